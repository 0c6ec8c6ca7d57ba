/* test_train.c: the optimiser and trainer: learning-rate schedule values,
 * gradient accumulation equals one large batch, a non-finite loss leaves
 * the weights untouched and (CLI) stops training keeping the checkpoint,
 * checkpoints round-trip exactly. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "model.h"
#include <unistd.h>

static void schedule(void) {
    rn_train_config tc;
    rn_train_config_default(&tc);
    tc.lr = 1.0; tc.min_lr_ratio = 0.1; tc.warmup = 9; tc.steps = 109;
    CHECK(fabs(rn_lr_at(&tc, 0) - 0.1) < 1e-12, "warm-up starts at lr/(warmup+1): %g", rn_lr_at(&tc, 0));
    CHECK(fabs(rn_lr_at(&tc, 8) - 0.9) < 1e-12, "warm-up step 8: %g", rn_lr_at(&tc, 8));
    CHECK(fabs(rn_lr_at(&tc, 9) - 1.0) < 1e-12, "peak after warm-up: %g", rn_lr_at(&tc, 9));
    CHECK(fabs(rn_lr_at(&tc, 59) - 0.55) < 1e-12, "cosine midpoint: %g", rn_lr_at(&tc, 59));
    CHECK(fabs(rn_lr_at(&tc, 109) - 0.1) < 1e-12, "cosine floor: %g", rn_lr_at(&tc, 109));
    CHECK(fabs(rn_lr_at(&tc, 500) - 0.1) < 1e-12, "floor after the end: %g", rn_lr_at(&tc, 500));
    tc.schedule = RN_SCHED_LINEAR;
    CHECK(fabs(rn_lr_at(&tc, 59) - 0.55) < 1e-12, "linear midpoint: %g", rn_lr_at(&tc, 59));
    CHECK(fabs(rn_lr_at(&tc, 34) - 0.775) < 1e-12, "linear quarter: %g", rn_lr_at(&tc, 34));
    tc.schedule = RN_SCHED_CONSTANT;
    CHECK(rn_lr_at(&tc, 80) == 1.0, "constant: %g", rn_lr_at(&tc, 80));
}

/* One step with accum = 2 x batch 2 equals accum = 1 x batch 4. */
static void accumulation(void) {
    int T = 16, V = 31;
    int32_t x[4 * 16], y[4 * 16];
    random_tokens(x, 64, V, 1);
    random_tokens(y, 64, V, 2);
    rn_real *after[2];
    for (int variant = 0; variant < 2; variant++) {
        rn_model *m = make_model(RN_PRESET_TORCHSCALE, 16, 2, 32, 2, V, 3);
        rn_train_config tc;
        rn_train_config_default(&tc);
        tc.seq = T; tc.batch = variant ? 2 : 4; tc.accum = variant ? 2 : 1; tc.warmup = 0;
        rn_trainer *t;
        CHECK_OK(rn_trainer_create(m, &tc, &t));
        rn_step_info info;
        CHECK_OK(rn_trainer_step(t, x, y, &info));
        size_t np = rn_model_num_params(m);
        after[variant] = malloc(np * sizeof(rn_real));
        memcpy(after[variant], rn_model_params(m), np * sizeof(rn_real));
        rn_trainer_free(t);
        rn_model_free(m);
    }
    rn_model *m = make_model(RN_PRESET_TORCHSCALE, 16, 2, 32, 2, V, 3);
    double e = rel_err(after[1], after[0], rn_model_num_params(m));
    CHECK(e < 10 * AGREE_TOL, "accumulated step differs from the large batch: %.3g", e);
    printf("  accumulation 2 x 2 vs 1 x 4: rel err of the weights %.2e\n", e);
    rn_model_free(m);
    free(after[0]);
    free(after[1]);
}

/* A poisoned model (logits overflow): the step fails with RN_ERR_NUMERIC
 * and changes nothing. Returns the trainer for the CLI test. */
static void nonfinite(const char *dir) {
    int T = 8, V = 256;
    int32_t x[2 * 8], y[2 * 8];
    random_tokens(x, 16, V, 1);
    random_tokens(y, 16, V, 2);
    rn_model *m = make_model(RN_PRESET_TORCHSCALE, 16, 2, 32, 1, V, 3);
    rn_train_config tc;
    rn_train_config_default(&tc);
    tc.seq = T; tc.batch = 2;
    rn_trainer *t;
    CHECK_OK(rn_trainer_create(m, &tc, &t));
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == RN_T_HEAD)
            for (int j = 0; j < m->tensors[i].rows * m->tensors[i].cols; j++) m->params[m->tensors[i].offset + j] = sizeof(rn_real) == 4 ? (rn_real)3e38 : (rn_real)1.7e308;
    size_t np = rn_model_num_params(m);
    rn_real *before = malloc(np * sizeof(rn_real));
    memcpy(before, m->params, np * sizeof(rn_real));
    rn_step_info info;
    rn_status st = rn_trainer_step(t, x, y, &info);
    CHECK(st == RN_ERR_NUMERIC, "poisoned step returned %s", rn_status_name(st));
    CHECK(strstr(rn_last_error(), "non-finite") != NULL, "message: %s", rn_last_error());
    CHECK(memcmp(before, m->params, np * sizeof(rn_real)) == 0, "weights changed by a non-finite step");
    CHECK(rn_trainer_step_count(t) == 0, "step counted");
#ifndef RETNET_DOUBLE
    /* The CLI resumes from this checkpoint, hits the non-finite loss, stops
     * with one clear line and exit 1, and leaves the checkpoint intact. */
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    CHECK_OK(rn_trainer_save(t, path, "{\"rng\":[\"1\",\"2\",\"3\",\"4\"],\"seed\":1}"));
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    unsigned char *orig = malloc((size_t)size);
    fseek(f, 0, SEEK_SET);
    CHECK(fread(orig, 1, (size_t)size, f) == (size_t)size, "read checkpoint");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/text.txt", dir);
    f = fopen(cmd, "w");
    for (int i = 0; i < 200; i++) fprintf(f, "Some text to train on, line %d.\n", i);
    fclose(f);
    snprintf(cmd, sizeof cmd, "build/retnet train --resume --out %s --data %s/text.txt --quiet 2> %s/err.txt", dir, dir, dir);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "CLI on a non-finite loss: exit status %d", WEXITSTATUS(rc));
    snprintf(cmd, sizeof cmd, "%s/err.txt", dir);
    f = fopen(cmd, "r");
    char line[512] = "";
    int lines = 0, found = 0;
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        if (strstr(line, "non-finite") && strstr(line, "intact")) found = 1;
    }
    if (f) fclose(f);
    CHECK(found, "CLI did not report the non-finite loss and the intact checkpoint");
    f = fopen(path, "rb");
    unsigned char *now = malloc((size_t)size);
    CHECK(f && fread(now, 1, (size_t)size, f) == (size_t)size && memcmp(now, orig, (size_t)size) == 0,
          "the checkpoint changed after a non-finite loss");
    if (f) fclose(f);
    free(now);
    free(orig);
#else
    (void)dir;
#endif
    free(before);
    rn_trainer_free(t);
    rn_model_free(m);
}

/* Checkpoint save/load restores parameters, moments and step exactly. */
static void checkpoint_roundtrip(const char *dir) {
    int T = 8, V = 19;
    int32_t x[16], y[16];
    random_tokens(x, 16, V, 4);
    random_tokens(y, 16, V, 5);
    rn_model *m = make_model(RN_PRESET_SEED, 16, 2, 32, 1, V, 3);
    rn_train_config tc;
    rn_train_config_default(&tc);
    tc.seq = T; tc.batch = 2;
    rn_trainer *t, *t2;
    CHECK_OK(rn_trainer_create(m, &tc, &t));
    for (int i = 0; i < 3; i++) CHECK_OK(rn_trainer_step(t, x, y, NULL));
    char path[512];
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    CHECK_OK(rn_trainer_save(t, path, "{\"hello\":1}"));
    char *user = NULL;
    CHECK_OK(rn_trainer_load(path, &t2, &user));
    rn_model *m2 = rn_trainer_model(t2);
    CHECK(rn_trainer_step_count(t2) == 3, "step %lld", (long long)rn_trainer_step_count(t2));
    CHECK(user && strstr(user, "hello"), "user data lost: %s", user ? user : "(null)");
    CHECK(memcmp(m->params, m2->params, m->n_params * sizeof(rn_real)) == 0, "parameters differ after load");
    /* The next step is identical in both. */
    rn_step_info a, b;
    CHECK_OK(rn_trainer_step(t, x, y, &a));
    CHECK_OK(rn_trainer_step(t2, x, y, &b));
    CHECK(a.loss == b.loss && memcmp(m->params, m2->params, m->n_params * sizeof(rn_real)) == 0,
          "a step after loading differs");
    free(user);
    rn_trainer_free(t);
    rn_trainer_free(t2);
    rn_model_free(m);
    rn_model_free(m2);
}

int main(void) {
    char dir[] = "/tmp/rn_test_train_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    schedule();
    accumulation();
    nonfinite(dir);
    checkpoint_roundtrip(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    CHECK_DONE();
}
