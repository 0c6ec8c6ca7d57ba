/* plot.c: loss curves as a self-contained SVG line chart. The chart is built
 * in memory, then written with one atomic write. */
#include "plot.h"
#include "retnet.h"

#include <stdio.h>

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- buffer */

/* A growing text buffer; the first failure sticks and later appends are
 * no-ops, so the writer checks once at the end. */
typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->failed = 1; return; }
        if (b->p && (size_t)k < b->cap - b->n) { b->n += (size_t)k; return; }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n <= (size_t)k) {
            if (cap > SIZE_MAX / 2) { b->failed = 1; return; }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) { b->failed = 1; return; }
        b->p = p;
        b->cap = cap;
    }
}

/* Appends text with the XML special characters escaped and control
 * characters dropped. */
static void sb_xml(sbuf *b, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default:
            if (c >= 0x20 && c != 0x7f) sb_printf(b, "%c", c);
        }
    }
}

/* ------------------------------------------------------------------ axes */

/* An axis: data range [lo, hi] mapped to pixels [p0, p1], ticks every
 * step from lo, labels with dec decimals. */
typedef struct {
    double lo, hi, step;
    double p0, p1;
    int dec;
} axis;

static double ax_map(const axis *a, double v) {
    return a->p0 + (v - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0);
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about n ticks
 * over [lo, hi] (at least min_step), and the range widened to whole steps;
 * an empty range is first widened by pad on each side. */
static void ax_fit(axis *a, double lo, double hi, int n, double pad, double min_step) {
    if (!(hi > lo)) {
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / n, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
    if (step < min_step) step = min_step;
    a->lo = floor(lo / step + 1e-9) * step;
    a->hi = ceil(hi / step - 1e-9) * step;
    if (!(a->hi > a->lo)) a->hi = a->lo + step;
    a->step = step;
    int dec = (int)ceil(-log10(step) - 1e-9);
    a->dec = dec < 0 ? 0 : dec > 9 ? 9 : dec;
}

/* Min and max of the finite points of a series into *lo, *hi. */
static void range_of(const double *v, const double *w, int n, double *lo, double *hi) {
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i]) || !isfinite(w[i])) continue;
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
}

/* Index of the last point with both coordinates finite, or -1. */
static int last_finite(const double *x, const double *y, int n) {
    for (int i = n - 1; i >= 0; i--)
        if (isfinite(x[i]) && isfinite(y[i])) return i;
    return -1;
}

/* ---------------------------------------------------------------- series */

/* One series as a path, broken at non-finite points; markers when r > 0,
 * else only at isolated points (which a path would not show). */
static void series(sbuf *b, const axis *ax, const axis *ay, const double *x, const double *y,
                   int n, const char *color, double width, double r) {
    sb_printf(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" "
                 "stroke-linejoin=\"round\" d=\"", color, width);
    int pen = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) { pen = 0; continue; }
        sb_printf(b, "%s%.1f %.1f", pen ? " L" : (i ? " M" : "M"), ax_map(ax, x[i]),
                  ax_map(ay, y[i]));
        pen = 1;
    }
    sb_printf(b, "\"/>\n");
    sb_printf(b, "<g fill=\"%s\">\n", color);
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        int alone = (i == 0 || !isfinite(x[i - 1]) || !isfinite(y[i - 1])) &&
                    (i == n - 1 || !isfinite(x[i + 1]) || !isfinite(y[i + 1]));
        if (r > 0 || alone)
            sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>\n", ax_map(ax, x[i]),
                      ax_map(ay, y[i]), r > 0 ? r : 2.0);
    }
    sb_printf(b, "</g>\n");
}

/* ----------------------------------------------------------------- chart */

int plot_loss_svg(const char *path, const double *step, const double *train_loss,
                     int n_train, const double *vstep, const double *val_loss, int n_val,
                     const char *title) {
    if (!path || n_train < 0 || n_val < 0 || (n_train && (!step || !train_loss)) ||
        (n_val && (!vstep || !val_loss)))
        return RN_ERR_ARG;

    /* Canvas and plot area (pixels). */
    const double W = 800, H = 480, L = 76, R = W - 24, TOP = 48, BOT = H - 56;

    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    range_of(step, train_loss, n_train, &xlo, &xhi);
    range_of(vstep, val_loss, n_val, &xlo, &xhi);
    range_of(train_loss, step, n_train, &ylo, &yhi);
    range_of(val_loss, vstep, n_val, &ylo, &yhi);
    if (!(xlo <= xhi)) { xlo = 0; xhi = 1; }
    if (!(ylo <= yhi)) { ylo = 0; yhi = 1; }
    axis ax = {0}, ay = {0};
    /* Steps are whole numbers: no ticks between them. */
    ax_fit(&ax, xlo, xhi, 8, 1.0, 1.0);
    ax.p0 = L; ax.p1 = R;
    ax_fit(&ay, ylo, yhi, 6, fabs(ylo) > 1e-6 ? 0.05 * fabs(ylo) : 0.5, 0.0);
    ay.p0 = BOT; ay.p1 = TOP;

    sbuf b = {0};
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                  "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\" "
                  "font-size=\"12\">\n", W, H, W, H);
    sb_printf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (title && *title) {
        sb_printf(&b, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
                      "font-weight=\"bold\">", (L + R) / 2);
        sb_xml(&b, title);
        sb_printf(&b, "</text>\n");
    }

    /* Grid and tick labels. */
    sb_printf(&b, "<g stroke=\"#e3e3e3\" stroke-width=\"1\">\n");
    int nx = (int)floor((ax.hi - ax.lo) / ax.step + 0.5), ny = (int)floor((ay.hi - ay.lo) / ay.step + 0.5);
    for (int i = 0; i <= nx; i++) {
        double px = ax_map(&ax, ax.lo + i * ax.step);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px, TOP, px, BOT);
    }
    for (int i = 0; i <= ny; i++) {
        double py = ax_map(&ay, ay.lo + i * ay.step);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L, py, R, py);
    }
    sb_printf(&b, "</g>\n<g fill=\"#333\">\n");
    for (int i = 0; i <= nx; i++) {
        double v = ax.lo + i * ax.step;
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n",
                  ax_map(&ax, v), BOT + 18, ax.dec, fabs(v) < 0.5 * ax.step ? 0.0 : v);
    }
    for (int i = 0; i <= ny; i++) {
        double v = ay.lo + i * ay.step;
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", L - 8,
                  ax_map(&ay, v) + 4, ay.dec, fabs(v) < 0.5 * ay.step ? 0.0 : v);
    }
    sb_printf(&b, "</g>\n");

    /* Axis frame and names. */
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                  "stroke=\"#333\" stroke-width=\"1\"/>\n", L, TOP, R - L, BOT - TOP);
    sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">step</text>\n",
              (L + R) / 2, H - 14);
    sb_printf(&b, "<text transform=\"translate(20 %.1f) rotate(-90)\" text-anchor=\"middle\" "
                  "font-size=\"13\">loss (nats/token)</text>\n", (TOP + BOT) / 2);

    /* The series: training thin, validation thicker with markers (when
     * there are few enough points to see them). */
    const char *c_train = "#1f77b4", *c_val = "#d62728";
    if (n_train) series(&b, &ax, &ay, step, train_loss, n_train, c_train, 1.2, 0);
    if (n_val) series(&b, &ax, &ay, vstep, val_loss, n_val, c_val, 2.0, n_val <= 200 ? 3.0 : 0);

    /* Legend, top right inside the plot area. */
    char lt[96] = "train loss", lv[96] = "validation loss";
    int it = last_finite(step, train_loss, n_train), iv = last_finite(vstep, val_loss, n_val);
    if (it >= 0) snprintf(lt, sizeof lt, "train loss (last %.4f)", train_loss[it]);
    if (iv >= 0) {
        double best = INFINITY;
        for (int i = 0; i < n_val; i++)
            if (isfinite(vstep[i]) && isfinite(val_loss[i]) && val_loss[i] < best) best = val_loss[i];
        snprintf(lv, sizeof lv, "validation loss (last %.4f, min %.4f)", val_loss[iv], best);
    }
    /* Width from the longer label, at about 7 px per character. */
    size_t chars = strlen(lt) > strlen(lv) ? strlen(lt) : strlen(lv);
    double lw = 52 + 7.0 * (double)chars, lx = R - lw - 10, ly = TOP + 10;
    sb_printf(&b, "<g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"46\" fill=\"white\" "
                  "fill-opacity=\"0.9\" stroke=\"#999\"/>\n", lx, ly, lw);
    sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"1.2\"/>\n", lx + 10, ly + 15, lx + 34, ly + 15, c_train);
    sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", lx + 42, ly + 19, lt);
    sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"2\"/>\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
              lx + 10, ly + 33, lx + 34, ly + 33, c_val, lx + 22, ly + 33, c_val);
    sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n</g>\n", lx + 42, ly + 37, lv);
    sb_printf(&b, "</svg>\n");

    if (b.failed) {
        free(b.p);
        return RN_ERR_NOMEM;
    }
    rn_atomic_file af;
    rn_status s = rn_atomic_open(&af, path);
    if (s == RN_OK) {
        s = rn_atomic_write(&af, b.p, b.n);
        if (s == RN_OK) s = rn_atomic_commit(&af);
        else rn_atomic_abort(&af);
    }
    free(b.p);
    return (int)s;
}
