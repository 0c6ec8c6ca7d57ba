/* plot.h: loss curves as a self-contained SVG chart (for the CLI). */
#ifndef RN_CLI_PLOT_H
#define RN_CLI_PLOT_H

/* Writes an SVG line chart of a training run to path, atomically (a crash
 * never leaves a partial file): x = optimiser step, y = loss in nats/token;
 * the training loss (step, train_loss: (n_train)) as a thin line, the
 * validation loss (vstep, val_loss: (n_val)) as a thicker line with
 * markers; axes with tick labels, a grid, a legend with the last (and, for
 * validation, the lowest) value, and title (may be NULL; escaped for XML).
 * Non-finite points are skipped (the line breaks there). Either series may
 * be empty (n = 0, arrays may then be NULL). The file needs nothing else to
 * display in a browser.
 * Returns 0 (RN_OK) on success, else an rn_status code with the message in
 * rn_last_error(). */
int plot_loss_svg(const char *path, const double *step, const double *train_loss,
                     int n_train, const double *vstep, const double *val_loss, int n_val,
                     const char *title);

#endif /* RN_CLI_PLOT_H */
