#!/bin/sh
# The flow-ODE commands: diffsde sample --sampler ode (report keys and counters, the exact NFE
# of the fixed-grid and few-step methods, reproducibility and chunking, every method, grid and
# option, the metrics against the exact p_eps), diffsde loglik (against the oracle's exact
# log p_eps, point by point, through `diffsde gmm logpdf`; the prior-mismatch term; Hutchinson
# within its standard error; bits/dim; dequantisation), diffsde encode/decode (a round trip
# returns the input), every new option with a valid and an invalid value (exit 2 with a
# message, no output), and run failures (exit 1, no output). Prints TAP; the plan comes last.
# Comparisons of numbers go through CSV files and awk (no python). Takes a few seconds.
. "${top_srcdir:-.}/tests/cli_tap.sh"
cli_tap_setup cli-ode
# usage_error DESCRIPTION PATTERN SUBCOMMAND ARGS...: exit 2, a message on stderr matching
# PATTERN, and no output file $tmp/u.*
usage_error() {
    desc=$1 pat=$2
    shift 2
    rm -f "$tmp/u.npy" "$tmp/u.json"
    "$bin" "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
    got=$?
    if [ "$got" -eq 2 ] && grep -q -- "$pat" "$tmp/err.txt" && [ ! -e "$tmp/u.npy" ] &&
        [ ! -e "$tmp/u.json" ]; then
        ok "$desc: exit 2, says '$pat'"
    else
        notok "$desc (exit $got, expected 2 and '$pat')"
        sed 's/^/# /' "$tmp/err.txt"
    fi
}
# top-level value of KEY in a report (keys of the top level are indented by two spaces)
top() { sed -n "s/^  \"$1\": \\(.*\\)$/\\1/p" "$2" | sed 's/,$//'; }
# value of KEY in the config object of a report (indented by four spaces)
cfg() { sed -n "/^  \"config\"/,/^  }/s/^    \"$1\": \\(.*\\)$/\\1/p" "$2" | sed 's/,$//'; }
# value of KEY in the "exact" object of a loglik report
exact() { sed -n "/^  \"exact\"/,/^  }/s/^    \"$1\": \\(.*\\)$/\\1/p" "$2" | sed 's/,$//'; }
# the occupancy or energy p-value of a sampling report
pval() { sed -n "/^    \"$1\"/,/^    }/s/^      \"pvalue\": \\(.*\\)$/\\1/p" "$2" | sed 's/,$//'; }
# awk_true EXPR VAR=VALUE...: whether the awk expression holds
awk_true() {
    expr=$1
    shift
    set -- $(for a in "$@"; do printf -- '-v %s ' "$a"; done)
    awk "$@" "BEGIN { exit !($expr) }"
}
# max_abs_diff A.csv B.csv: largest |a - b| over all fields of two CSV files of one shape
max_abs_diff() {
    paste -d, "$1" "$2" | awk -F, '{ h = NF / 2; for (j = 1; j <= h; j++) {
        e = $j - $(j + h); if (e < 0) e = -e; if (e > m) m = e } } END { printf "%.17g\n", m + 0 }'
}

ode="--model gmm:ring8 --sde vp --sampler ode"
tiny="$ode --n 16 --seed 5 --quiet"

# ---- sample --sampler ode: rk45 (the default method) on ring8, and its report ---------------
status_is "ring8, vp, ode rk45, n = 2000 succeeds" 0 "$bin" sample $ode --method rk45 --n 2000 --seed 3 --out "$tmp/a.npy" --report "$tmp/a.json"
check "a summary line names the file" 'grep -q "wrote 2000 samples of dimension 2 to $tmp/a.npy" "$tmp/out.txt"'
check "the .npy has a 128-byte header and 2000 x 2 doubles" '[ "$(wc -c <"$tmp/a.npy")" -eq $((128 + 4000 * 8)) ]'
if command -v python3 >/dev/null 2>&1; then
    check "the report parses (python3 json)" 'python3 -c "import json, sys; json.load(open(sys.argv[1]))" "$tmp/a.json"'
fi
for key in version seed nfe_per_sample nfe_min nfe_max score_calls score_evals accepted rejected \
    denoise_calls steps wall_seconds metrics config; do
    check "the report has \"$key\"" '[ -n "$(top $key "$tmp/a.json")" ]'
done
ver=$("$bin" version | sed 's/.*(library \(.*\))$/\1/')
check "version is the library's ($ver)" '[ "$(top version "$tmp/a.json")" = "\"$ver\"" ]'
for key in model sde sde_params sampler method steps grid rho rtol atol max_steps whole_batch eps \
    denoise n seed out report quiet chunk; do
    check "config has \"$key\"" '[ -n "$(cfg $key "$tmp/a.json")" ]'
done
check "config: sampler ode, method rk45" '[ "$(cfg sampler "$tmp/a.json")" = "\"ode\"" ] && [ "$(cfg method "$tmp/a.json")" = "\"rk45\"" ]'
check "config: the ODE defaults rtol = atol = 1e-5, no denoising, per-sample control" '[ "$(cfg rtol "$tmp/a.json")" = 1e-05 ] && [ "$(cfg atol "$tmp/a.json")" = 1e-05 ] && [ "$(cfg denoise "$tmp/a.json")" = false ] && [ "$(cfg whole_batch "$tmp/a.json")" = false ]'
check "config: an adaptive method has no steps, grid or rho (null)" '[ "$(cfg steps "$tmp/a.json")" = null ] && [ "$(cfg grid "$tmp/a.json")" = null ] && [ "$(cfg rho "$tmp/a.json")" = null ]'
check "config: eps is VP's default 0.001" '[ "$(cfg eps "$tmp/a.json")" = 0.001 ]'
check "nfe_min <= nfe_per_sample <= nfe_max, nfe_min >= 6 (one DP5 step)" 'awk_true "a >= 6 && a <= m && m <= b" a="$(top nfe_min "$tmp/a.json")" m="$(top nfe_per_sample "$tmp/a.json")" b="$(top nfe_max "$tmp/a.json")"'
check "nfe_per_sample = score_evals / n" 'awk_true "e / 2000 == m" e="$(top score_evals "$tmp/a.json")" m="$(top nfe_per_sample "$tmp/a.json")"'
check "no denoising call" '[ "$(top denoise_calls "$tmp/a.json")" = 0 ]'
check "metrics are against the exact p_eps at t = 0.001 (the flow's value at eps)" 'grep -q "\"against\": \"exact p_eps (t = 0.001)\"" "$tmp/a.json" && grep -q "^    \"t\": 0.001" "$tmp/a.json"'
# At rtol = 1e-5 the flow samples p_eps up to an integration error far below what n = 2000
# samples resolve. Seed 3, n = 2000: each p-value is uniform if the samples are exact, so each
# threshold 1e-4 fails falsely with probability 1e-4 (2e-4 for the two).
check "occupancy p-value vs exact p_eps > 1e-4" 'awk_true "p > 1e-4" p="$(pval occupancy "$tmp/a.json")"'
check "energy-test p-value vs exact p_eps > 1e-4" 'awk_true "p > 1e-4" p="$(pval energy "$tmp/a.json")"'

status_is "ode dpm-solver++2m (defaults: 20 steps on the karras grid)" 0 "$bin" sample $ode --method dpm-solver++2m --n 2000 --seed 3 --out "$tmp/d.npy" --report "$tmp/d.json"
for key in version seed nfe_per_sample nfe_min nfe_max score_calls wall_seconds accepted rejected metrics; do
    check "dpm-solver++2m report has \"$key\"" '[ -n "$(top $key "$tmp/d.json")" ]'
done
check "dpm-solver++2m: steps 20, grid karras, rtol/atol null" '[ "$(cfg steps "$tmp/d.json")" = 20 ] && [ "$(cfg grid "$tmp/d.json")" = "\"karras\"" ] && [ "$(cfg rtol "$tmp/d.json")" = null ]'
check "dpm-solver++2m: one score evaluation per step, nfe 20 for every sample" '[ "$(top nfe_per_sample "$tmp/d.json")" = 20.0 ] && [ "$(top nfe_min "$tmp/d.json")" = 20 ] && [ "$(top nfe_max "$tmp/d.json")" = 20 ] && [ "$(top score_calls "$tmp/d.json")" = 20 ]'
# Seed 3, n = 2000: as above, a false failure with probability 1e-4 each if the samples were
# exact; 20 DPM-Solver++ steps are accurate enough on ring8 that their bias stays unseen.
check "dpm-solver++2m: occupancy p-value vs exact p_eps > 1e-4" 'awk_true "p > 1e-4" p="$(pval occupancy "$tmp/d.json")"'

# ---- exact NFE of the fixed-grid and few-step methods (ode.h's table) -----------------------
nfe_is() { # nfe_is DESCRIPTION EXPECTED ARGS...
    desc=$1 want=$2
    shift 2
    "$bin" sample $tiny "$@" --out "$tmp/s.npy" --report "$tmp/s.json" 2>"$tmp/err.txt"
    check "$desc: nfe_per_sample = $want" '[ "$(top nfe_per_sample "$tmp/s.json")" = "$want" ]'
}
nfe_is "euler --steps 7" 7.0 --method euler --steps 7
nfe_is "heun --steps 7 (2 per step)" 14.0 --method heun --steps 7
nfe_is "rk4 --steps 3 (4 per step)" 12.0 --method rk4 --steps 3
nfe_is "ddim --steps 6" 6.0 --method ddim --steps 6
nfe_is "dpm-solver++2m --steps 10" 10.0 --method dpm-solver++2m --steps 10
nfe_is "edm-heun --steps 5 (2N - 1)" 9.0 --method edm-heun --steps 5
nfe_is "edm-heun default 18 steps (2N - 1)" 35.0 --method edm-heun
nfe_is "euler default 100 steps" 100.0 --method euler
nfe_is "euler --steps 7 --denoise (one more call)" 8.0 --method euler --steps 7 --denoise
check "...denoise_calls = 1, config denoise true" '[ "$(top denoise_calls "$tmp/s.json")" = 1 ] && [ "$(cfg denoise "$tmp/s.json")" = true ]'
check "...and the metrics are against p0 (denoised samples)" 'grep -q "\"against\": \"exact p0\"" "$tmp/s.json"'
nfe_is "euler --steps 7 --no-denoise" 7.0 --method euler --steps 7 --no-denoise

# ---- reproducibility and chunking ------------------------------------------------------------
"$bin" sample $ode --n 2000 --seed 3 --out "$tmp/b.npy" --quiet
check "same seed, same bytes (rk45)" 'cmp -s "$tmp/a.npy" "$tmp/b.npy"'
"$bin" sample $ode --method dpm-solver++2m --n 2000 --seed 3 --out "$tmp/b.npy" --quiet
check "same seed, same bytes (dpm-solver++2m)" 'cmp -s "$tmp/d.npy" "$tmp/b.npy"'
"$bin" sample $ode --n 2000 --seed 4 --out "$tmp/c.npy" --quiet
check "another seed, other samples" '! cmp -s "$tmp/a.npy" "$tmp/c.npy"'
# 4100 samples are two chunks (4096 + 4); per-sample control: the first 20 rows are those of a
# 20-sample run, bit for bit, and the second chunk holds new samples
"$bin" sample $ode --n 4100 --seed 9 --out "$tmp/big.npy" --quiet
"$bin" sample $ode --n 20 --seed 9 --out "$tmp/few.npy" --quiet
check "chunking does not change a sample (rk45, 4100 vs 20 samples)" 'cmp -s -n 320 -i 128:128 "$tmp/big.npy" "$tmp/few.npy"'
check "...and the second chunk's samples are new ones" '! cmp -s -n 64 -i $((128 + 4096 * 16)):128 "$tmp/big.npy" "$tmp/big.npy"'

# ---- every method, grid and option with a valid value ---------------------------------------
for m in euler heun rk4 rk45 cvode-adams cvode-bdf arkode-dp gsl-rkf45 gsl-rk8pd gsl-msadams \
    ddim dpm-solver++2m edm-heun; do
    status_is "--method $m" 0 "$bin" sample $tiny --method $m --out "$tmp/s.npy" --report "$tmp/s.json"
    check "...recorded in the report" '[ "$(cfg method "$tmp/s.json")" = "\"$m\"" ]'
done
for g in uniform logsnr karras; do
    status_is "--grid $g (euler)" 0 "$bin" sample $tiny --method euler --steps 10 --grid $g --out "$tmp/s.npy" --report "$tmp/s.json"
    check "...recorded in the report" '[ "$(cfg grid "$tmp/s.json")" = "\"$g\"" ]'
done
status_is "--grid karras --rho 3" 0 "$bin" sample $tiny --method heun --steps 10 --grid karras --rho 3 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...rho recorded" '[ "$(cfg rho "$tmp/s.json")" = 3.0 ]'
status_is "--rho 5 with edm-heun (karras by default)" 0 "$bin" sample $tiny --method edm-heun --rho 5 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...grid karras, rho 5" '[ "$(cfg grid "$tmp/s.json")" = "\"karras\"" ] && [ "$(cfg rho "$tmp/s.json")" = 5.0 ]'
status_is "--rtol 1e-3 --atol 1e-4" 0 "$bin" sample $tiny --rtol 1e-3 --atol 1e-4 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded" '[ "$(cfg rtol "$tmp/s.json")" = 0.001 ] && [ "$(cfg atol "$tmp/s.json")" = 0.0001 ]'
status_is "--whole-batch" 0 "$bin" sample $tiny --whole-batch --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded" '[ "$(cfg whole_batch "$tmp/s.json")" = true ]'
check "...one step size for the batch: every sample has the same NFE" '[ "$(top nfe_min "$tmp/s.json")" = "$(top nfe_max "$tmp/s.json")" ]'
status_is "--eps 0.01" 0 "$bin" sample $tiny --eps 0.01 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded, and the metrics are against p_eps at 0.01" '[ "$(cfg eps "$tmp/s.json")" = 0.01 ] && grep -q "exact p_eps (t = 0.01)" "$tmp/s.json"'
for sde in ve subvp; do
    status_is "--sde $sde with ode" 0 "$bin" sample --model gmm:ring8 --sde $sde --sampler ode --n 16 --quiet --out "$tmp/s.npy"
done
status_is "--sampler ode --out FILE.csv" 0 "$bin" sample $tiny --out "$tmp/s.csv"
check "...16 rows of 2 values" '[ "$(wc -l <"$tmp/s.csv")" -eq 16 ]'

# ---- sample: invalid values and options without effect --------------------------------------
o="--out $tmp/u.npy"
usage_error "--method unknown" "unknown method 'foo' (one of euler" sample $tiny --method foo $o
usage_error "--grid unknown" "unknown grid 'foo'" sample $tiny --method euler --grid foo $o
usage_error "--rho 0" "--rho: must be > 0" sample $tiny --method edm-heun --rho 0 $o
usage_error "--rho off the karras grid" "karras grid only" sample $tiny --method euler --rho 3 $o
usage_error "--steps with rk45" "fixed-grid methods only" sample $tiny --method rk45 --steps 10 $o
usage_error "--grid with cvode-bdf" "fixed-grid methods only" sample $tiny --method cvode-bdf --grid uniform $o
usage_error "--rtol with euler" "adaptive methods only" sample $tiny --method euler --rtol 1e-3 $o
usage_error "--whole-batch with ddim" "adaptive methods only" sample $tiny --method ddim --whole-batch $o
usage_error "--steps 0 with ode" "--steps: must be at least 1" sample $tiny --method euler --steps 0 $o
usage_error "--steps abc" "not a non-negative integer" sample $tiny --method euler --steps abc $o
usage_error "--rtol 0 with ode" "--rtol: must be > 0" sample $tiny --rtol 0 $o
usage_error "--predictor with ode" "applies to --sampler pc only" sample $tiny --predictor euler-maruyama $o
usage_error "--snr with ode" "applies to --sampler pc only" sample $tiny --snr 0.1 $o
usage_error "--method with pc" "applies to --sampler ode only" sample --model gmm:ring8 --n 4 --method rk45 $o
usage_error "--grid with adaptive-sde" "applies to --sampler ode only" sample --model gmm:ring8 --n 4 --sampler adaptive-sde --grid uniform $o
usage_error "--whole-batch with pc" "applies to --sampler ode only" sample --model gmm:ring8 --n 4 --whole-batch $o
usage_error "--sampler unknown" "(pc, adaptive-sde or ode)" sample $tiny --sampler flow $o
usage_error "--eps 2 with ode" "--eps: must be in (0, T)" sample $tiny --eps 2 $o
printf 'keep' >"$tmp/keep.npy"
status_is "ode with an unknown model: exit 1" 1 "$bin" sample $tiny --model gmm:nosuch --out "$tmp/keep.npy"
check "...the existing output is untouched" '[ "$(cat "$tmp/keep.npy")" = keep ]'

# ---- loglik ---------------------------------------------------------------------------------
# 300 exact samples of p_eps (VP, eps = 1e-5) and their exact log p_eps from the oracle
"$bin" gmm sample --model gmm:ring8 --sde vp --t 1e-5 --n 300 --seed 11 --out "$tmp/x.npy"
"$bin" gmm sample --model gmm:ring8 --sde vp --t 1e-5 --n 300 --seed 11 --out "$tmp/x.csv"
"$bin" gmm logpdf --model gmm:ring8 --sde vp --t 1e-5 --in "$tmp/x.npy" --out "$tmp/ex.csv"
ll="--model gmm:ring8 --sde vp --in $tmp/x.npy"
tight="--terminal exact --rtol 1e-8 --atol 1e-8"
status_is "loglik, exact divergence, terminal exact, rtol = atol = 1e-8" 0 "$bin" loglik $ll $tight --out "$tmp/lp.csv" --report "$tmp/lp.json"
check "prints the mean, the standard error and bits/dim" 'grep -q "mean -[0-9.]* nats, standard error [0-9.e-]*, [0-9.e-]* bits/dim" "$tmp/out.txt"'
check "one value per input row" '[ "$(wc -l <"$tmp/lp.csv")" -eq 300 ]'
check "every point's log p within 1e-5 nats of the oracle's exact log p_eps (gmm logpdf)" 'awk_true "e < 1e-5" e="$(max_abs_diff "$tmp/lp.csv" "$tmp/ex.csv")"'
for key in version seed n d mean std_error bpd prior_mismatch nfe_per_sample nfe_min nfe_max \
    score_calls accepted rejected wall_seconds exact config; do
    check "loglik report has \"$key\"" '[ -n "$(top $key "$tmp/lp.json")" ]'
done
for key in divergence probes probe terminal bin_width dequantize method rtol atol eps in out; do
    check "loglik config has \"$key\"" '[ -n "$(cfg $key "$tmp/lp.json")" ]'
done
exmean=$(awk '{ s += $1 } END { printf "%.17g", s / NR }' "$tmp/ex.csv")
check "report: mean within 1e-6 of the exact mean ($exmean)" 'awk_true "(m - e < 1e-6) && (e - m < 1e-6)" m="$(top mean "$tmp/lp.json")" e="$exmean"'
check "report: the exact mean is the oracle's" 'awk_true "(m - e < 1e-12) && (e - m < 1e-12)" m="$(exact mean "$tmp/lp.json")" e="$exmean"'
check "report: error_max_abs < 1e-5" 'awk_true "e < 1e-5" e="$(exact error_max_abs "$tmp/lp.json")"'
check "config: eps defaults to 1e-5, terminal exact" '[ "$(cfg eps "$tmp/lp.json")" = 1e-05 ] && [ "$(cfg terminal "$tmp/lp.json")" = "\"exact\"" ]'
check "bpd = -mean/(d log 2)" 'awk_true "(b + m / (2 * log(2)))^2 < 1e-24" b="$(top bpd "$tmp/lp.json")" m="$(top mean "$tmp/lp.json")"'
check "std_error = sd/sqrt(n) of the values written" 'awk_true "(s - r)^2 < 1e-20" s="$(top std_error "$tmp/lp.json")" r="$(awk "{ x[NR] = \$1; m += \$1 } END { m /= NR; for (i = 1; i <= NR; i++) v += (x[i] - m)^2; printf \"%.17g\", sqrt(v / (NR - 1) / NR) }" "$tmp/lp.csv")"'

status_is "loglik --out .npy: shape (n,)" 0 "$bin" loglik $ll $tight --out "$tmp/lp.npy" --quiet
check "...a 1-D float64 array of 300 values" 'head -c 128 "$tmp/lp.npy" | grep -q "'"'shape': (300,)"'" && [ "$(wc -c <"$tmp/lp.npy")" -eq $((128 + 300 * 8)) ]'
check "...--quiet prints nothing" '[ ! -s "$tmp/out.txt" ]'
status_is "loglik from a CSV input" 0 "$bin" loglik --model gmm:ring8 --in "$tmp/x.csv" $tight --out "$tmp/lpc.csv" --quiet
check "...the same values as from the .npy" 'cmp -s "$tmp/lp.csv" "$tmp/lpc.csv"'

status_is "loglik, terminal prior (default)" 0 "$bin" loglik $ll --rtol 1e-8 --atol 1e-8 --out "$tmp/lq.csv" --report "$tmp/lq.json"
# log p with the prior minus log p with the exact p_T is log prior - log p_T at the same latents
check "the prior-mismatch term explains the difference to the exact mean (within 1e-5)" 'awk_true "(d - p)^2 < 1e-10" d="$(exact error_mean "$tmp/lq.json")" p="$(top prior_mismatch "$tmp/lq.json")"'
check "...and it is not zero (the prior is only approximately p_T)" 'awk_true "p != 0" p="$(top prior_mismatch "$tmp/lq.json")"'
check "...and is said to be in log p" '[ "$(top prior_mismatch_in_logp "$tmp/lq.json")" = true ]'

# Hutchinson with 2 Rademacher probes: unbiased, so the mean error against the exact values
# is within 4 of its reported standard errors. Seed 7, n = 300 points: if the errors were
# normal, a false failure has probability 6e-5.
status_is "loglik --divergence hutchinson --probes 2 --seed 7" 0 "$bin" loglik $ll --terminal exact --rtol 1e-6 --atol 1e-6 --divergence hutchinson --probes 2 --seed 7 --out "$tmp/lh.csv" --report "$tmp/lh.json"
check "...mean error within 4 standard errors of 0" 'awk_true "e * e < 16 * s * s && s > 0" e="$(exact error_mean "$tmp/lh.json")" s="$(exact error_se "$tmp/lh.json")"'
check "...config: probes 2, rademacher, seed 7" '[ "$(cfg probes "$tmp/lh.json")" = 2 ] && [ "$(cfg probe "$tmp/lh.json")" = "\"rademacher\"" ] && [ "$(top seed "$tmp/lh.json")" = 7 ]'
"$bin" loglik $ll --terminal exact --rtol 1e-6 --atol 1e-6 --divergence hutchinson --probes 2 --seed 7 --out "$tmp/lh2.csv" --quiet
check "...same seed, same bytes" 'cmp -s "$tmp/lh.csv" "$tmp/lh2.csv"'
status_is "loglik --probe gaussian" 0 "$bin" loglik $ll --divergence hutchinson --probe gaussian --out "$tmp/l.csv" --quiet
status_is "loglik --method euler --steps 50" 0 "$bin" loglik $ll --method euler --steps 50 --out "$tmp/l.csv" --report "$tmp/l.json"
check "...50 steps of the augmented ODE" '[ "$(cfg steps "$tmp/l.json")" = 50 ] && [ "$(cfg method "$tmp/l.json")" = "\"euler\"" ]'
status_is "loglik --method cvode-bdf" 0 "$bin" loglik $ll --method cvode-bdf --out "$tmp/l.csv" --quiet
status_is "loglik --eps 1e-3" 0 "$bin" loglik $ll --eps 1e-3 --out "$tmp/l.csv" --report "$tmp/l.json"
check "...recorded" '[ "$(cfg eps "$tmp/l.json")" = 0.001 ]'
status_is "loglik --sde ve --sde-param sigma_max=20" 0 "$bin" loglik --model gmm:ring8 --sde ve --sde-param sigma_max=20 --in "$tmp/x.npy" --out "$tmp/l.csv" --quiet
status_is "loglik --bin-width 0.01" 0 "$bin" loglik $ll --bin-width 0.01 --out "$tmp/l.csv" --report "$tmp/l.json"
check "...bpd = -(mean + d log b)/(d log 2)" 'awk_true "(b + (m + 2 * log(0.01)) / (2 * log(2)))^2 < 1e-24" b="$(top bpd "$tmp/l.json")" m="$(top mean "$tmp/l.json")"'
# Dequantised points x + b u: the command recomputes the exact log p_eps at the same points
# from the documented stream, so a tight solve must match them too.
status_is "loglik --bin-width 0.01 --dequantize --seed 2" 0 "$bin" loglik $ll $tight --bin-width 0.01 --dequantize --seed 2 --out "$tmp/l.csv" --report "$tmp/l.json"
check "...exact values at the dequantised points, matched within 1e-5" '[ "$(exact at "$tmp/l.json")" = "\"dequantised points\"" ] && awk_true "e < 1e-5" e="$(exact error_max_abs "$tmp/l.json")"'
check "...and other values than without dequantisation" '! cmp -s "$tmp/l.csv" "$tmp/lp.csv"'

o="--out $tmp/u.npy"
usage_error "loglik: missing --in" "--in is required" loglik --model gmm:ring8 $o
usage_error "loglik: missing --out" "--out is required" loglik $ll
usage_error "loglik: missing --model" "--model is required" loglik --in "$tmp/x.npy" $o
usage_error "loglik --divergence unknown" "unknown divergence 'trace'" loglik $ll --divergence trace $o
usage_error "loglik --probes 0" "--probes: must be at least 1" loglik $ll --divergence hutchinson --probes 0 $o
usage_error "loglik --probes with exact" "applies to --divergence hutchinson only" loglik $ll --probes 3 $o
usage_error "loglik --probe unknown" "unknown probe 'sphere'" loglik $ll --divergence hutchinson --probe sphere $o
usage_error "loglik --probe with exact" "applies to --divergence hutchinson only" loglik $ll --probe gaussian $o
usage_error "loglik --terminal unknown" "unknown terminal density 'data'" loglik $ll --terminal data $o
usage_error "loglik --bin-width -1" "--bin-width: must be >= 0" loglik $ll --bin-width -1 $o
usage_error "loglik --dequantize without --bin-width" "needs --bin-width" loglik $ll --dequantize $o
usage_error "loglik --seed without randomness" "--seed has no effect" loglik $ll --seed 3 $o
usage_error "loglik --method ddim (few-step: refused by the library)" "few-step method" loglik $ll --method ddim $o
usage_error "loglik --method unknown" "unknown method 'foo'" loglik $ll --method foo $o
usage_error "loglik --steps with rk45" "fixed-grid methods only" loglik $ll --steps 10 $o
usage_error "loglik --rtol with euler" "adaptive methods only" loglik $ll --method euler --rtol 1e-3 $o
usage_error "loglik --eps 2" "--eps: must be in (0, T)" loglik $ll --eps 2 $o
usage_error "loglik --eps 0" "--eps: must be > 0" loglik $ll --eps 0 $o
usage_error "loglik: an unknown option" "unknown option '--frob'" loglik $ll --frob $o
usage_error "loglik: --report = --out" "different files" loglik $ll $o --report "$tmp/u.npy"
usage_error "loglik: a stray argument" "unexpected argument 'extra'" loglik $ll $o extra
status_is "loglik: missing input file: exit 1" 1 "$bin" loglik --model gmm:ring8 --in "$tmp/none.npy" --out "$tmp/u.npy"
check "...no output" '[ ! -e "$tmp/u.npy" ]'
"$bin" gmm sample --model gmm:random:3,2,1 --n 5 --out "$tmp/x3.npy"
status_is "loglik: points of the wrong dimension: exit 1" 1 "$bin" loglik --model gmm:ring8 --in "$tmp/x3.npy" --out "$tmp/u.npy"
check "...says so, and no output" 'grep -q "dimension 3" "$tmp/err.txt" && [ ! -e "$tmp/u.npy" ]'
status_is "loglik: --report in a missing directory: exit 1" 1 "$bin" loglik $ll --out "$tmp/u.npy" --report "$tmp/nodir/r.json"
check "...and then no values either" '[ ! -e "$tmp/u.npy" ]'

# ---- encode / decode ------------------------------------------------------------------------
ed="--model gmm:ring8 --sde vp --rtol 1e-9 --atol 1e-9"
"$bin" gmm sample --model gmm:ring8 --sde vp --t 1e-3 --n 200 --seed 12 --out "$tmp/y.csv"
status_is "encode (rk45, rtol = atol = 1e-9)" 0 "$bin" encode $ed --in "$tmp/y.csv" --out "$tmp/z.csv" --report "$tmp/e.json"
check "...a summary line" 'grep -q "encoded 200 points of dimension 2" "$tmp/out.txt"'
check "...the latents differ from the data" '! cmp -s "$tmp/y.csv" "$tmp/z.csv"'
for key in version n d nfe_per_sample nfe_min nfe_max score_calls accepted rejected wall_seconds config; do
    check "encode report has \"$key\"" '[ -n "$(top $key "$tmp/e.json")" ]'
done
check "encode config: direction eps to T, eps 0.001, rk45" '[ "$(cfg direction "$tmp/e.json")" = "\"eps to T\"" ] && [ "$(cfg eps "$tmp/e.json")" = 0.001 ] && [ "$(cfg method "$tmp/e.json")" = "\"rk45\"" ]'
status_is "decode the latents back" 0 "$bin" decode $ed --in "$tmp/z.csv" --out "$tmp/yb.csv" --quiet
check "encode then decode returns the input within 1e-6" 'awk_true "e < 1e-6" e="$(max_abs_diff "$tmp/y.csv" "$tmp/yb.csv")"'
"$bin" encode $ed --in "$tmp/y.csv" --out "$tmp/z2.csv" --quiet
check "encode: same input, same bytes" 'cmp -s "$tmp/z.csv" "$tmp/z2.csv"'
"$bin" gmm sample --model gmm:ring8 --sde vp --t 1e-3 --n 20 --seed 12 --out "$tmp/y20.csv"
"$bin" encode $ed --in "$tmp/y20.csv" --out "$tmp/z20.csv" --quiet
check "encode: a point's latent does not depend on the other points" '[ "$(head -n 20 "$tmp/z.csv")" = "$(cat "$tmp/z20.csv")" ]'
status_is "encode --method rk4 --steps 200, .npy in and out" 0 "$bin" encode --model gmm:ring8 --method rk4 --steps 200 --in "$tmp/x.npy" --out "$tmp/z.npy" --quiet
status_is "decode --method rk4 --steps 200" 0 "$bin" decode --model gmm:ring8 --method rk4 --steps 200 --in "$tmp/z.npy" --out "$tmp/xb.npy" --quiet
check "...shape (300, 2)" '[ "$(wc -c <"$tmp/xb.npy")" -eq $((128 + 600 * 8)) ]'
status_is "encode --method edm-heun --rho 5" 0 "$bin" encode --model gmm:ring8 --method edm-heun --rho 5 --in "$tmp/y.csv" --out "$tmp/z.csv" --quiet
status_is "encode --method ddim --grid logsnr --steps 30 --eps 0.01" 0 "$bin" encode --model gmm:ring8 --method ddim --grid logsnr --steps 30 --eps 0.01 --in "$tmp/y.csv" --out "$tmp/z.csv" --quiet
status_is "decode --whole-batch --sde subvp" 0 "$bin" decode --model gmm:ring8 --sde subvp --whole-batch --in "$tmp/y.csv" --out "$tmp/z.csv" --quiet
o="--out $tmp/u.npy"
usage_error "encode: missing --in" "--in is required" encode --model gmm:ring8 $o
usage_error "decode: missing --model" "--model is required" decode --in "$tmp/y.csv" $o
usage_error "encode --method unknown" "unknown method 'foo'" encode --model gmm:ring8 --in "$tmp/y.csv" --method foo $o
usage_error "decode --steps with rk45" "fixed-grid methods only" decode --model gmm:ring8 --in "$tmp/y.csv" --steps 5 $o
usage_error "encode --whole-batch with euler" "adaptive methods only" encode --model gmm:ring8 --in "$tmp/y.csv" --method euler --whole-batch $o
usage_error "encode --eps 5" "--eps: must be in (0, T)" encode --model gmm:ring8 --in "$tmp/y.csv" --eps 5 $o
usage_error "decode: an unknown option" "unknown option '--denoise'" decode --model gmm:ring8 --in "$tmp/y.csv" --denoise $o
status_is "encode: points of the wrong dimension: exit 1" 1 "$bin" encode --model gmm:ring8 --in "$tmp/x3.npy" --out "$tmp/u.npy"
check "...no output" '[ ! -e "$tmp/u.npy" ]'

# ---- --help of the new commands and options -----------------------------------------------
status_is "diffsde --help" 0 "$bin" --help
for sub in loglik encode decode; do
    check "diffsde --help lists $sub" 'grep -q "^  $sub " "$tmp/out.txt"'
done
status_is "sample --help" 0 "$bin" sample --help
for opt in --method --grid --rho --whole-batch --denoise --no-denoise --steps --rtol --atol --eps; do
    check "sample --help lists $opt" 'grep -q -- "^  $opt " "$tmp/out.txt"'
done
check "sample --help names every ODE method" 'for m in euler heun rk4 rk45 cvode-adams cvode-bdf arkode-dp gsl-rkf45 gsl-rk8pd gsl-msadams ddim dpm-solver++2m edm-heun; do grep -q -- "$m" "$tmp/out.txt" || exit 1; done'
check "sample --help gives an ODE example" 'grep -q "diffsde sample --model gmm:ring8 --sde vp --sampler ode" "$tmp/out.txt"'
status_is "loglik --help" 0 "$bin" loglik --help
for opt in --model --sde --sde-param --eps --divergence --probes --probe --terminal --bin-width \
    --dequantize --seed --method --rtol --atol --steps --in --out --report --quiet --help; do
    check "loglik --help lists $opt" 'grep -q -- "^  $opt " "$tmp/out.txt"'
done
check "loglik --help gives defaults and examples" '[ "$(grep -c "default" "$tmp/out.txt")" -ge 14 ] && grep -q "^examples" "$tmp/out.txt"'
for sub in encode decode; do
    status_is "$sub --help" 0 "$bin" $sub --help
    for opt in --model --sde --sde-param --eps --method --rtol --atol --whole-batch --steps --grid \
        --rho --in --out --report --quiet --help; do
        check "$sub --help lists $opt" 'grep -q -- "^  $opt " "$tmp/out.txt"'
    done
    check "$sub --help gives defaults and an example" '[ "$(grep -c "default" "$tmp/out.txt")" -ge 10 ] && grep -q "^  diffsde $sub --model" "$tmp/out.txt"'
done

echo "1..$n"
[ "$fails" -eq 0 ]
