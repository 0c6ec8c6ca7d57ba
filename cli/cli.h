/* cli.h: the subcommands, each `int cmd_NAME(argc, argv)` with argv after
 * the subcommand's name; the table in retnet.c dispatches to them. */
#ifndef RN_CLI_H
#define RN_CLI_H

int cmd_init(int argc, char **argv);      /* retnet.c */
int cmd_info(int argc, char **argv);      /* retnet.c */
int cmd_verify(int argc, char **argv);    /* retnet.c */
int cmd_logits(int argc, char **argv);    /* retnet.c */
int cmd_train(int argc, char **argv);     /* train.c */
int cmd_generate(int argc, char **argv);  /* generate.c */
int cmd_eval(int argc, char **argv);      /* generate.c */
int cmd_bench(int argc, char **argv);     /* bench.c */
int cmd_convert(int argc, char **argv);   /* convert.c */
int cmd_grads(int argc, char **argv);     /* convert.c */
int cmd_quantize(int argc, char **argv);  /* quantize.c */
int cmd_tokenize(int argc, char **argv); /* tokenize.c */
int cmd_tokenizer(int argc, char **argv); /* tokenizer_train.c */
int cmd_serve(int argc, char **argv);     /* serve.c */
int cmd_data(int argc, char **argv);      /* data.c */

#endif
