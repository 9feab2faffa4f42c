# Runs overlaid in one chart: two tiny finished runs opened read-only from a REPL script
# (`open RUN`, and a compare folder that holds both), the loss chart exported as PNG (read
# back: each run's colour is there) and as CSV (a header naming "RUN: series", a row per
# step); a finished run's plots/ holds PNG and CSV of every chart; opening what is not a
# run folder fails saying so.
source tests/cli/lib.sh
source tests/cli/tiny_world.sh
PNGCHECK=${BUILD:-build}/tools/pngcheck
check tiny_world_built tiny_world_ok

# palette of views/chart.c: the session's own run is colour 0, overlaid runs 1, 2, ...
C1=d55e00 C2=009e73

for r in a b; do
    seed=3
    [ $r = b ] && seed=4
    "$PROMPTKD" train --config "$W/cfg.json" --no-tui --quiet --set name=$r --set steps=8 --set seed=$seed \
        >"$TMP/train_$r.out" 2>&1
    check "train_$r" test -f "$TMP/runs/$r/checkpoints/latest"
done
check run_plots_png test -f "$TMP/runs/a/plots/loss.png"
check run_plots_csv test -f "$TMP/runs/a/plots/loss.csv"
check run_plots_csv_rows test "$(wc -l <"$TMP/runs/a/plots/loss.csv")" -eq 9
check run_plots_lr_csv grep -q '^step,elapsed_s,lr,prompt_lr$' "$TMP/runs/a/plots/lr.csv"
cp -r "$TMP/runs/a/." "$TMP/a_before"

cat >"$TMP/overlay.pk" <<EOF
charts
view loss
view lr
open $TMP/runs/a
open $TMP/runs/b
open
view loss ema 0.6 log on
export loss $TMP/overlay.png --size 640x360
export loss $TMP/overlay.csv
export rouge $TMP/rouge.csv
view loss window 4 x time
export loss $TMP/window.csv
export loss $TMP/window.png
close all
open $TMP/cmp
export loss $TMP/cmp.csv
quit
EOF
mkdir -p "$TMP/cmp/runs"
cp -r "$TMP/runs/a" "$TMP/cmp/runs/promptkd-s3"
cp -r "$TMP/runs/b" "$TMP/cmp/runs/promptkd-s4"
"$PROMPTKD" repl --config "$W/cfg.json" --set name=viewer -f "$TMP/overlay.pk" >"$TMP/out" 2>"$TMP/err"
rc=$?
check overlay_script_exit_0 test $rc -eq 0
[ $rc -eq 0 ] || { echo "--- stderr"; head -20 "$TMP/err"; }
check charts_list_throughput grep -q '^throughput$' "$TMP/out"
check charts_list_exaccerr_over_steps grep -q '^exaccerr$' "$TMP/out"
check loss_default_smoothed_log grep -q '^loss: ema 0.60, log on, window all, x step' "$TMP/out"
check lr_default_raw_linear grep -q '^lr: ema 0.00, log off, window all, x step' "$TMP/out"
check window_rows test "$(cut -d, -f1 "$TMP/window.csv" | tail -n +2 | tr '\n' ' ')" = "5 6 7 8 "
check window_png "$PNGCHECK" "$TMP/window.png" 960 540 $C1:100 $C2:100
check open_says_what_it_opened grep -q '^opened a: promptkd, step 8/8' "$TMP/out"
check open_lists_runs grep -q "^b  .*runs/b$" "$TMP/out"
check overlay_png_has_both_runs "$PNGCHECK" "$TMP/overlay.png" 640 360 $C1:100 $C2:100
header=$(head -1 "$TMP/overlay.csv")
check overlay_csv_header_run_a grep -q ',a: student_loss' <<<"$header"
check overlay_csv_header_run_b grep -q ',b: student_loss' <<<"$header"
check overlay_csv_step_then_times grep -q '^step,a: elapsed_s,b: elapsed_s,' <<<"$header"
check overlay_csv_rows test "$(wc -l <"$TMP/overlay.csv")" -eq 9
check overlay_csv_steps_in_order test "$(cut -d, -f1 "$TMP/overlay.csv" | tail -n +2 | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 "
fields=$(head -1 "$TMP/overlay.csv" | awk -F, '{print NF}')
check overlay_csv_rectangular test -z "$(awk -F, -v n="$fields" 'NF != n' "$TMP/overlay.csv")"
# the raw values: run a's student_loss column equals its metrics.jsonl, step by step
col=$(head -1 "$TMP/overlay.csv" | tr ',' '\n' | grep -n '^a: student_loss$' | cut -d: -f1)
want=$(grep '"student_loss"' "$TMP/runs/a/metrics.jsonl" | sed 's/.*"student_loss":\([^,}]*\).*/\1/' | head -3 |
    awk '{printf "%.6g ", $1}')
got=$(cut -d, -f"$col" "$TMP/overlay.csv" | sed -n 2,4p | awk '{printf "%.6g ", $1}')
check overlay_csv_raw_values test "$want" = "$got"
check rouge_csv_evaluations grep -q '^4,' "$TMP/rouge.csv"
check compare_folder_opens_each_run grep -q ',promptkd-s4: student_loss' "$TMP/cmp.csv"
check compare_folder_both_runs grep -q ',promptkd-s3: student_loss' "$TMP/cmp.csv"
check viewer_left_no_run_folder test ! -d "$TMP/runs/viewer"
check opened_run_unchanged diff -r "$TMP/a_before" "$TMP/runs/a"

# what is not a run: one sentence each
printf 'open %s/nowhere\n' "$TMP" >"$TMP/bad1.pk"
expect_error open_missing_folder "nowhere: no such folder" "$PROMPTKD" repl --config "$W/cfg.json" --set name=v1 -f "$TMP/bad1.pk"
printf 'open %s\n' "$W" >"$TMP/bad2.pk"
expect_error open_not_a_run "not a run folder \(no metrics.jsonl\) nor a compare folder" \
    "$PROMPTKD" repl --config "$W/cfg.json" --set name=v2 -f "$TMP/bad2.pk"
printf 'open %s/runs/a\nopen %s/runs/a/\n' "$TMP" "$TMP" >"$TMP/bad3.pk"
expect_error open_twice "already open as a" "$PROMPTKD" repl --config "$W/cfg.json" --set name=v3 -f "$TMP/bad3.pk"
printf 'export loss %s/x.txt\n' "$TMP" >"$TMP/bad4.pk"
expect_error export_needs_png_or_csv "must end in .png or .csv" \
    "$PROMPTKD" repl --config "$W/cfg.json" --set name=v4 -f "$TMP/bad4.pk"
printf 'view loss window 0\n' >"$TMP/bad5.pk"
expect_error view_window_positive "view window: expected a whole number of steps" \
    "$PROMPTKD" repl --config "$W/cfg.json" --set name=v5 -f "$TMP/bad5.pk"
