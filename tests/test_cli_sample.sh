#!/bin/sh
# diffsde sample: a small run and its files (the .npy's size, the report's keys and counters),
# bit-identical reruns and chunking, every option with a valid value (tiny runs) and with an
# invalid one (exit 2 with a message), configurations the sampler refuses (exit 2), run
# failures (exit 1) that leave no file behind, and the progress line (only on a terminal).
# Prints TAP; the plan comes last. Takes a few seconds.
. "${top_srcdir:-.}/tests/cli_tap.sh"
cli_tap_setup cli-sample
# usage_error DESCRIPTION PATTERN ARGS...: exit 2, a message on stderr matching PATTERN, no output
usage_error() {
    desc=$1 pat=$2
    shift 2
    rm -f "$tmp/u.npy"
    "$bin" sample "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
    got=$?
    if [ "$got" -eq 2 ] && grep -q -- "$pat" "$tmp/err.txt" && [ ! -e "$tmp/u.npy" ]; then
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
size_is() { [ "$(wc -c <"$1")" -eq $((128 + $2 * 8)) ]; }

small="--model gmm:ring8 --sde vp --steps 100 --n 500 --seed 3"
tiny="--model gmm:ring8 --n 16 --steps 30 --seed 5 --quiet"
T="--predictor euler-maruyama" # a predictor valid for every SDE and every N

# ---- a small run and its report --------------------------------------------------------------
status_is "ring8, vp, N = 100, n = 500 succeeds" 0 "$bin" sample $small --out "$tmp/a.npy" --report "$tmp/a.json"
check "the .npy has a 128-byte header and 500 x 2 doubles" 'size_is "$tmp/a.npy" 1000'
check "nothing on stderr when it is not a terminal" '[ ! -s "$tmp/err.txt" ]'
check "a summary line on stdout names the file" 'grep -q "wrote 500 samples of dimension 2 to $tmp/a.npy" "$tmp/out.txt"'
check "the report is one JSON object" '[ "$(head -c 1 "$tmp/a.json")" = "{" ] && [ "$(tail -n 1 "$tmp/a.json")" = "}" ]'
if command -v python3 >/dev/null 2>&1; then
    check "the report parses (python3 json)" 'python3 -c "import json, sys; json.load(open(sys.argv[1]))" "$tmp/a.json"'
fi
for key in version seed nfe_per_sample score_calls wall_seconds metrics config; do
    check "the report has \"$key\"" '[ -n "$(top $key "$tmp/a.json")" ]'
done
ver=$("$bin" version | sed 's/.*(library \(.*\))$/\1/')
check "version is the library's ($ver)" '[ "$(top version "$tmp/a.json")" = "\"$ver\"" ]'
check "seed is 3" '[ "$(top seed "$tmp/a.json")" = 3 ]'
# PC with a corrector: per level one corrector and one predictor call, plus the denoising call
check "nfe_per_sample = 2 N + 1 = 201" '[ "$(top nfe_per_sample "$tmp/a.json")" = 201.0 ]'
check "score_calls = 201 (one chunk)" '[ "$(top score_calls "$tmp/a.json")" = 201 ]'
check "denoise_calls = 1" '[ "$(top denoise_calls "$tmp/a.json")" = 1 ]'
check "wall_seconds is a positive number" 'awk -v w="$(top wall_seconds "$tmp/a.json")" "BEGIN { exit !(w + 0 > 0) }"'
for key in model sde sde_params sampler predictor corrector snr steps corrector_steps eps denoise \
    reference batch_norms rtol atol max_steps n seed out report quiet chunk; do
    check "config has \"$key\"" '[ -n "$(cfg $key "$tmp/a.json")" ]'
done
check "config: default snr for vp is 0.01" '[ "$(cfg snr "$tmp/a.json")" = 0.01 ]'
check "config: default eps for vp is 0.001" '[ "$(cfg eps "$tmp/a.json")" = 0.001 ]'
check "config: default beta_max is written out" 'grep -q "\"beta_max\": 20" "$tmp/a.json"'
for key in moments occupancy sliced_w2 sliced_w2_null energy loglik; do
    check "metrics have \"$key\"" 'grep -q "^    \"$key\": " "$tmp/a.json"'
done
check "metrics say against what and with which seed" 'grep -q "\"against\": \"exact p0\"" "$tmp/a.json" && grep -q "^    \"seed\": " "$tmp/a.json"'

# ---- reproducibility ----------------------------------------------------------------------------
"$bin" sample $small --out "$tmp/b.npy" --quiet
check "same seed, same bytes" 'cmp -s "$tmp/a.npy" "$tmp/b.npy"'
"$bin" sample $small --seed 4 --out "$tmp/c.npy" --quiet
check "another seed, other samples" '! cmp -s "$tmp/a.npy" "$tmp/c.npy"'
# 4100 samples run as two chunks (4096 + 4); the first 20 rows equal those of a 20-sample run
"$bin" sample --model gmm:ring8 --steps 25 --corrector none --n 4100 --seed 9 --out "$tmp/big.npy" --quiet
"$bin" sample --model gmm:ring8 --steps 25 --corrector none --n 20 --seed 9 --out "$tmp/few.npy" --quiet
check "chunking does not change a sample (4100 vs 20 samples)" 'cmp -s -n 320 -i 128:128 "$tmp/big.npy" "$tmp/few.npy"'
check "...and the second chunk's samples are new ones, not the first chunk's again" '! cmp -s -n 64 -i $((128 + 4096 * 16)):128 "$tmp/big.npy" "$tmp/big.npy"'

# ---- every option with a valid value -------------------------------------------------------
status_is "--help" 0 "$bin" sample --help
for opt in --model --sde --sde-param --sampler --predictor --corrector --snr --steps \
    --corrector-steps --eps --no-denoise --rtol --atol --reference --batch-norms --n --seed \
    --out --report --quiet --help; do
    check "--help lists $opt" 'grep -q -- "^  $opt " "$tmp/out.txt"'
done
check "--help gives the defaults" '[ "$(grep -c "default" "$tmp/out.txt")" -ge 14 ]'
check "--help gives an example" 'grep -q "^example" "$tmp/out.txt" && grep -q "diffsde sample --model gmm:ring8" "$tmp/out.txt"'
check "--help gives the exit statuses" 'grep -q "exit status: 0 success, 1 the run failed, 2 usage error" "$tmp/out.txt"'

for sde in ve vp subvp; do
    status_is "--sde $sde" 0 "$bin" sample $tiny --sde $sde --out "$tmp/s.npy"
done
for p in euler-maruyama reverse-diffusion ancestral none; do
    status_is "--predictor $p" 0 "$bin" sample $tiny --predictor $p --out "$tmp/s.npy"
done
for c in langevin ald mala none; do
    status_is "--corrector $c (ve)" 0 "$bin" sample $tiny --sde ve --corrector $c --out "$tmp/s.npy"
done
status_is "--sde-param beta_max=15 (repeatable)" 0 "$bin" sample $tiny --sde-param beta_min=0.2 --sde-param beta_max=15 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded in the report" 'grep -q "\"beta_max\": 15" "$tmp/s.json" && grep -q "\"beta_min\": 0.2" "$tmp/s.json"'
status_is "--sde ve --sde-param sigma_max=20" 0 "$bin" sample $tiny --sde ve --sde-param sigma_max=20 --out "$tmp/s.npy"
status_is "--snr 0.16" 0 "$bin" sample $tiny --snr 0.16 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded in the report" '[ "$(cfg snr "$tmp/s.json")" = 0.16 ]'
status_is "--corrector-steps 2" 0 "$bin" sample $tiny --corrector-steps 2 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...gives nfe_per_sample = 3 N + 1 = 91" '[ "$(top nfe_per_sample "$tmp/s.json")" = 91.0 ]'
status_is "--eps 0.01" 0 "$bin" sample $tiny --eps 0.01 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded in the report" '[ "$(cfg eps "$tmp/s.json")" = 0.01 ]'
status_is "--no-denoise" 0 "$bin" sample $tiny --no-denoise --out "$tmp/s.npy" --report "$tmp/s.json"
check "...no denoising call: nfe_per_sample = 2 N = 60" '[ "$(top nfe_per_sample "$tmp/s.json")" = 60.0 ] && [ "$(top denoise_calls "$tmp/s.json")" = 0 ]'
status_is "--reference" 0 "$bin" sample $tiny --reference --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded in the report" '[ "$(cfg reference "$tmp/s.json")" = true ]'
status_is "--batch-norms" 0 "$bin" sample $tiny --batch-norms --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded in the report" '[ "$(cfg batch_norms "$tmp/s.json")" = true ]'
status_is "--sampler adaptive-sde --rtol 0.1 --atol 0.05" 0 "$bin" sample --model gmm:ring8 --n 100 --seed 5 --quiet --sampler adaptive-sde --rtol 0.1 --atol 0.05 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...recorded in the report" '[ "$(cfg sampler "$tmp/s.json")" = "\"adaptive-sde\"" ] && [ "$(cfg rtol "$tmp/s.json")" = 0.1 ]'
status_is "--sampler pc" 0 "$bin" sample $tiny --sampler pc --out "$tmp/s.npy"
status_is "--n 1 (no metrics)" 0 "$bin" sample $tiny --n 1 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...metrics null in the report" '[ "$(top metrics "$tmp/s.json")" = null ] && size_is "$tmp/s.npy" 2'
status_is "--seed 18446744073709551615" 0 "$bin" sample $tiny --seed 18446744073709551615 --out "$tmp/s.npy" --report "$tmp/s.json"
check "...a seed beyond 2^63 is kept exactly (as a string)" '[ "$(top seed "$tmp/s.json")" = "\"18446744073709551615\"" ]'
status_is "--out FILE.csv" 0 "$bin" sample $tiny --out "$tmp/s.csv"
check "...16 rows of 2 values" '[ "$(wc -l <"$tmp/s.csv")" -eq 16 ] && [ "$(head -n 1 "$tmp/s.csv" | tr , "\n" | wc -l)" -eq 2 ]'
status_is "--model gmm:FILE.json" 0 "$bin" sample $tiny --model "gmm:${top_srcdir:-.}/examples/models/three_modes_2d.json" --out "$tmp/s.npy"
status_is "without --quiet" 0 "$bin" sample --model gmm:ring8 --n 16 --steps 30 --out "$tmp/s.npy"
check "...prints a summary on stdout and nothing on stderr" '[ -s "$tmp/out.txt" ] && [ ! -s "$tmp/err.txt" ]'
status_is "--quiet" 0 "$bin" sample $tiny --out "$tmp/s.npy"
check "...prints nothing at all" '[ ! -s "$tmp/out.txt" ] && [ ! -s "$tmp/err.txt" ]'

# ---- invalid values: exit 2 and a message; no file ------------------------------------------
o="--out $tmp/u.npy"
usage_error "missing --model" "--model is required" --n 5 $o
usage_error "missing --out" "--out is required" --model gmm:ring8 --n 5
usage_error "missing --n" "--n is required" --model gmm:ring8 $o
usage_error "--n 0" "--n: must be in 1" $tiny --n 0 $o
usage_error "--n abc" "not a non-negative integer" $tiny --n abc $o
usage_error "--sde unknown" "unknown SDE name" $tiny --sde foo $o
usage_error "--sde-param malformed" "expected KEY=VALUE" $tiny --sde-param beta_max $o
usage_error "--sde-param unknown key" "unknown parameter" $tiny --sde-param sigma_max=3 $o
usage_error "--sde-param not a number" "not a finite number" $tiny --sde-param beta_max=abc $o
usage_error "--sde-param out of range" "beta" $tiny --sde-param beta_max=-1 $o
usage_error "--sampler unknown" "unknown sampler 'flow'" $tiny --sampler flow $o
usage_error "--predictor unknown" "unknown predictor 'heun'" $tiny --predictor heun $o
usage_error "--corrector unknown" "unknown corrector 'hmc'" $tiny --corrector hmc $o
usage_error "--snr 0" "--snr: must be > 0" $tiny --snr 0 $o
usage_error "--snr nan" "not a finite number" $tiny --snr nan $o
usage_error "--steps 0" "--steps: must be at least 2" $tiny --steps 0 $o
usage_error "--steps -5" "not a non-negative integer" $tiny --steps -5 $o
usage_error "--steps 1" "--steps: must be at least 2" $tiny --steps 1 $o
usage_error "--corrector-steps 0" "--corrector-steps: must be at least 1" $tiny --corrector-steps 0 $o
usage_error "--eps 2" "--eps: must be in (0, T)" $tiny --eps 2 $o
usage_error "--eps 0" "--eps: must be > 0" $tiny --eps 0 $o
usage_error "--eps -1e-3" "--eps: must be > 0" $tiny --eps -1e-3 $o
usage_error "--rtol 0" "--rtol: must be > 0" --model gmm:ring8 --n 5 --sampler adaptive-sde --rtol 0 $o
usage_error "--atol -1" "--atol: must be > 0" --model gmm:ring8 --n 5 --sampler adaptive-sde --atol -1 $o
usage_error "--seed -1" "not a non-negative integer" $tiny --seed -1 $o
usage_error "--seed 2^64" "0 .. 2^64-1" $tiny --seed 18446744073709551616 $o
usage_error "an unknown option" "unknown option '--frob'" $tiny --frob $o
usage_error "an option without its value" "needs a value" $tiny $o --steps
usage_error "a stray argument" "unexpected argument 'extra'" $tiny $o extra
usage_error "--report = --out" "name the same file" $tiny $o --report "$tmp/u.npy"
usage_error "--rtol with pc" "applies to --sampler adaptive-sde only" $tiny --rtol 0.1 $o
usage_error "--steps with adaptive-sde" "applies to --sampler pc only" --model gmm:ring8 --n 5 --sampler adaptive-sde --steps 10 $o
usage_error "--predictor with adaptive-sde" "applies to --sampler pc only" --model gmm:ring8 --n 5 --sampler adaptive-sde $T $o
usage_error "--snr with --corrector none" "no effect with --corrector none" $tiny --corrector none --snr 0.1 $o

# Configurations the sampler refuses are usage errors too (exit 2): nothing was run.
usage_error "ancestral with subvp" "ancestral" $tiny --sde subvp --predictor ancestral $o
usage_error "vp reverse diffusion with N = 20" "beta_max/N = 20/20 = 1" $tiny --steps 20 --predictor reverse-diffusion $o
usage_error "vp ancestral with N = 20" "beta_max/N = 20/20 = 1" $tiny --steps 20 --predictor ancestral $o

# ---- run failures: exit 1, nothing written -------------------------------------------------------
printf 'keep' >"$tmp/keep.npy"
status_is "unknown built-in model" 1 "$bin" sample $tiny --model gmm:nosuch --out "$tmp/keep.npy"
status_is "unreadable model file" 1 "$bin" sample $tiny --model "gmm:$tmp/none.json" --out "$tmp/keep.npy"
printf '{"dim": 2, "components": []}' >"$tmp/bad.json"
status_is "malformed model file" 1 "$bin" sample $tiny --model "gmm:$tmp/bad.json" --out "$tmp/keep.npy"
status_is "an unknown option leaves an existing --out alone" 2 "$bin" sample $tiny --frob --out "$tmp/keep.npy"
check "an existing output is untouched after failures" '[ "$(cat "$tmp/keep.npy")" = keep ]'
status_is "--out in a missing directory (found before sampling)" 1 "$bin" sample $tiny --out "$tmp/nodir/x.npy"
status_is "--report in a missing directory" 1 "$bin" sample $tiny --out "$tmp/r1.npy" --report "$tmp/nodir/r.json"
check "...and then no samples either" '[ ! -e "$tmp/r1.npy" ]'
mkdir "$tmp/isdir"
status_is "--out is a directory (found when writing, after sampling)" 1 "$bin" sample $tiny --out "$tmp/isdir" --report "$tmp/r2.json"
check "...and then no report, and no temporary left" '[ ! -e "$tmp/r2.json" ] && [ -z "$(ls -A "$tmp/isdir")" ] && [ -z "$(ls -a "$tmp" | grep "^\.r2\.json\.")" ]'

# ---- --from-report: a report reruns its run bit for bit --------------------------------------
# The report's config, not its command line, defines the rerun: every effective value (SDE
# parameters, resolved defaults) is read back, reals in a form that reads back exactly.
rerun() { # rerun NAME ARGS...: run, rerun from the report, compare samples and reports
    name=$1
    shift
    "$bin" sample "$@" --out "$tmp/$name.npy" --report "$tmp/$name.json" --quiet
    status_is "--from-report reruns $name" 0 "$bin" sample --from-report "$tmp/$name.json" --out "$tmp/$name.2.npy" --report "$tmp/$name.2.json" --quiet
    check "...the same bytes ($name)" 'cmp -s "$tmp/$name.npy" "$tmp/$name.2.npy"'
    # Only the outputs, the command line and the times may differ between the two reports.
    strip() { sed -e '/"command_line"/,/\]/d' -e '/seconds/d' -e '/"out"/d' -e '/"report"/d' -e '/"quiet"/d' "$1"; }
    check "...the same report but for paths and times ($name)" '[ "$(strip "$tmp/$name.json")" = "$(strip "$tmp/$name.2.json")" ]'
}
rerun pc --model gmm:ring8 --sde ve --sde-param sigma_max=20 --steps 40 --snr 0.13 --corrector ald --n 300 --seed 11
rerun pc-batch --model gmm:ring8 --steps 60 --batch-norms --corrector-steps 2 --n 300 --seed 12
rerun adaptive --model gmm:ring8 --sampler adaptive-sde --rtol 0.07 --atol 0.02 --eps 0.002 --n 300 --seed 13
rerun ode-rk45 --model gmm:ring8 --sde subvp --sampler ode --rtol 1e-4 --atol 1e-6 --n 300 --seed 14
rerun ode-karras --model gmm:ring8 --sampler ode --method heun --steps 9 --grid karras --rho 5 --denoise --n 300 --seed 15
rerun ode-whole --model gmm:ring8 --sampler ode --method rk45 --whole-batch --n 300 --seed 16
# Without --out and --report the rerun writes to the paths of the report (here relative ones).
mkdir "$tmp/rel"
(cd "$tmp/rel" && "$bin" sample --model gmm:ring8 --steps 40 --n 50 --seed 2 --out s.npy --report r.json --quiet && cp s.npy s0.npy && rm s.npy &&
    "$bin" sample --from-report r.json --quiet)
check "--from-report alone writes to the report's own paths" 'cmp -s "$tmp/rel/s.npy" "$tmp/rel/s0.npy"'
usage_error "--from-report with --n" "cannot be combined with --from-report" --from-report "$tmp/pc.json" --n 5 $o
usage_error "--from-report with --sampler" "--sampler cannot be combined" --from-report "$tmp/pc.json" --sampler ode $o
status_is "--from-report of a missing file: exit 1" 1 "$bin" sample --from-report "$tmp/none.json" $o
printf '{"program": "diffsde sample", "config": {' >"$tmp/trunc.json"
status_is "--from-report of malformed JSON: exit 1" 1 "$bin" sample --from-report "$tmp/trunc.json" $o
"$bin" gmm sample --model gmm:ring8 --n 4 --out "$tmp/x4.csv"
"$bin" encode --model gmm:ring8 --in "$tmp/x4.csv" --out "$tmp/z4.npy" --report "$tmp/enc.json" --quiet
usage_error "--from-report of another command's report" "not the report of a .diffsde sample. run" --from-report "$tmp/enc.json" $o
sed 's/"model": "gmm:ring8",//' "$tmp/pc.json" >"$tmp/nomodel.json"
usage_error "--from-report without config.model" "config.model is missing" --from-report "$tmp/nomodel.json" $o
sed 's/"corrector": "ald"/"corrector": "hmc"/' "$tmp/pc.json" >"$tmp/badname.json"
usage_error "--from-report with an unknown corrector" "config.corrector: unknown name 'hmc'" --from-report "$tmp/badname.json" $o
sed 's/"version": "[^"]*"/"version": "0.0.0"/' "$tmp/pc.json" >"$tmp/oldver.json"
"$bin" sample --from-report "$tmp/oldver.json" --out "$tmp/ov.npy" --report "$tmp/ov.json" --quiet 2>"$tmp/err.txt"
check "--from-report of another version: a warning, and the run" 'grep -q "warning: .*written by diffsde 0.0.0" "$tmp/err.txt" && cmp -s "$tmp/pc.npy" "$tmp/ov.npy"'

# ---- the progress line: on a terminal only ----------------------------------------------------
if command -v script >/dev/null 2>&1 && script -qec true /dev/null >/dev/null 2>&1; then
    script -qec "\"$bin\" sample --model gmm:ring8 --n 64 --steps 200 --out \"$tmp/p.npy\"" /dev/null >"$tmp/tty.txt" 2>&1
    check "on a terminal: a progress line with step, t, NFE, elapsed and time left" 'grep -q "step [0-9]*  t [0-9.e-]*  NFE/sample [0-9]*  elapsed [0-9.]* s  left ~" "$tmp/tty.txt"'
    script -qec "\"$bin\" sample --model gmm:ring8 --n 64 --steps 200 --quiet --out \"$tmp/p.npy\"" /dev/null >"$tmp/tty.txt" 2>&1
    check "on a terminal with --quiet: no progress line" '! grep -q "NFE/sample" "$tmp/tty.txt"'
else
    ok "# SKIP no script(1) to run the command on a terminal"
fi

echo "1..$n"
[ "$fails" -eq 0 ]
