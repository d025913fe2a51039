#!/bin/sh
# diffsde gmm: describe, score, logpdf and sample from the command line, checked against hand
# formulas for the single Gaussian "gauss1" (mean (1, -0.5), covariance [[1.5, 0.4], [0.4, 0.6]]),
# plus usage errors (exit 2) and run failures (exit 1, no output file left). Prints TAP.
. "${top_srcdir:-.}/tests/cli_tap.sh"
cli_tap_setup cli-gmm
# close A B TOL: |A - B| <= TOL * max(1, |B|)
close() { awk -v a="$1" -v b="$2" -v tol="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; if (m < 1) m = 1; exit !(d <= tol * m) }'; }

echo "1..29"
status_is "describe ring8" 0 "$bin" gmm describe --model gmm:ring8
grep -q "dimension 2, 8 components" "$tmp/out.txt" && ok "describe says 8 components in 2-D" || notok "describe says 8 components in 2-D"
status_is "describe gauss1 under VP" 0 "$bin" gmm describe --model gmm:gauss1 --sde vp --t 0.5
grep -q "p_t under vp" "$tmp/out.txt" && ok "describe names the SDE" || notok "describe names the SDE"

# Points (2, 0.5) and (-1, 1): r = x - mu = (1, 1) and (-2, 1.5).
printf '2,0.5\n-1,1\n' >"$tmp/x.csv"
status_is "score of gauss1 at p0" 0 "$bin" gmm score --model gmm:gauss1 --in "$tmp/x.csv" --out "$tmp/s.csv"
# -Sigma^{-1} r with Sigma^{-1} = [[0.6, -0.4], [-0.4, 1.5]] / 0.74
expect=$(awk 'BEGIN { det = 0.74; split("1 1 -2 1.5", r, " ");
    for (i = 0; i < 2; i++) { a = r[2*i+1]; b = r[2*i+2];
        printf "%.17g,%.17g\n", -(0.6*a - 0.4*b)/det, -(-0.4*a + 1.5*b)/det } }')
good=1
i=0
echo "$expect" | while IFS=, read -r e1 e2; do
    i=$((i + 1))
    line=$(sed -n "${i}p" "$tmp/s.csv")
    g1=${line%,*}
    g2=${line#*,}
    close "$g1" "$e1" 1e-13 && close "$g2" "$e2" 1e-13 || { echo "# row $i: got $line, expected $e1,$e2"; exit 1; }
done && ok "score equals -Sigma^-1 (x - mu)" || notok "score equals -Sigma^-1 (x - mu)"

status_is "logpdf of gauss1 at p0" 0 "$bin" gmm logpdf --model gmm:gauss1 --in "$tmp/x.csv" --out "$tmp/l.csv"
expect=$(awk 'BEGIN { det = 0.74; pi = atan2(0, -1); split("1 1 -2 1.5", r, " ");
    for (i = 0; i < 2; i++) { a = r[2*i+1]; b = r[2*i+2];
        q = (0.6*a*a - 0.8*a*b + 1.5*b*b)/det;
        printf "%.17g\n", -0.5*q - log(2*pi) - 0.5*log(det) } }')
i=0
echo "$expect" | while read -r e; do
    i=$((i + 1))
    g=$(sed -n "${i}p" "$tmp/l.csv")
    close "$g" "$e" 1e-13 || { echo "# row $i: got $g, expected $e"; exit 1; }
done && ok "logpdf equals the Gaussian formula" || notok "logpdf equals the Gaussian formula"

status_is "sample 1000 from ring8 under VP" 0 "$bin" gmm sample --model gmm:ring8 --sde vp --t 0.3 --n 1000 --seed 7 --out "$tmp/a.npy"
size=$(wc -c <"$tmp/a.npy")
[ "$size" -eq $((128 + 1000 * 2 * 8)) ] && ok "sample file has a 128-byte header and 1000x2 doubles" || notok "sample file size $size"
"$bin" gmm sample --model gmm:ring8 --sde vp --t 0.3 --n 1000 --seed 7 --out "$tmp/b.npy"
cmp -s "$tmp/a.npy" "$tmp/b.npy" && ok "same seed, same bytes" || notok "same seed, same bytes"
"$bin" gmm sample --model gmm:ring8 --sde vp --t 0.3 --n 1000 --seed 8 --out "$tmp/c.npy"
cmp -s "$tmp/a.npy" "$tmp/c.npy" && notok "another seed gives other samples" || ok "another seed gives other samples"
status_is "score reads the .npy it wrote" 0 "$bin" gmm score --model gmm:ring8 --sde vp --t 0.3 --in "$tmp/a.npy" --out "$tmp/s.npy"
status_is "logpdf to .npy" 0 "$bin" gmm logpdf --model gmm:ring8 --sde vp --t 0.3 --in "$tmp/a.npy" --out "$tmp/l.npy"
size=$(wc -c <"$tmp/l.npy")
[ "$size" -eq $((128 + 1000 * 8)) ] && ok "logpdf output has shape (n,)" || notok "logpdf output size $size"

# Usage errors: exit 2.
status_is "missing --model" 2 "$bin" gmm describe
status_is "unknown action" 2 "$bin" gmm frobnicate --model gmm:ring8
status_is "--sde without --t" 2 "$bin" gmm describe --model gmm:ring8 --sde vp
status_is "--t outside [0, 1]" 2 "$bin" gmm describe --model gmm:ring8 --sde vp --t 1.5
status_is "--t not a number" 2 "$bin" gmm describe --model gmm:ring8 --sde vp --t abc
status_is "--sde-param unknown key" 2 "$bin" gmm describe --model gmm:ring8 --sde vp --t 0.5 --sde-param sigma_max=3
status_is "--sde-param malformed" 2 "$bin" gmm describe --model gmm:ring8 --sde vp --t 0.5 --sde-param beta_max
status_is "--n 0" 2 "$bin" gmm sample --model gmm:ring8 --n 0 --out "$tmp/z.npy"
status_is "--seed negative" 2 "$bin" gmm sample --model gmm:ring8 --n 5 --seed -1 --out "$tmp/z.npy"
status_is "unknown option" 2 "$bin" gmm sample --model gmm:ring8 --n 5 --frob --out "$tmp/z.npy"

# Run failures: exit 1 and no output file.
status_is "unknown built-in model" 1 "$bin" gmm describe --model gmm:nosuch
status_is "missing input file" 1 "$bin" gmm score --model gmm:ring8 --in "$tmp/none.npy" --out "$tmp/z.npy"
printf '1,2,3\n' >"$tmp/x3.csv"
status_is "dimension mismatch" 1 "$bin" gmm score --model gmm:ring8 --in "$tmp/x3.csv" --out "$tmp/z.npy"
[ ! -e "$tmp/z.npy" ] && ok "no output file after failures" || notok "no output file after failures"
[ "$fails" -eq 0 ]
