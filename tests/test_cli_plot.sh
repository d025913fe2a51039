#!/bin/sh
# diffsde sample --plot and --plot-paths: pictures for a 2-D mixture (with the paths of the
# pc, adaptive-sde and ode samplers), a 16-D one and a 1-D one are PNG files of the layout of
# their dimension; a picture is complete or absent (gnuplot missing, failing or writing
# nothing, a missing directory: exit 1 and no file at all — samples, report or picture); the
# usage errors of the two options. Needs gnuplot (Debian: gnuplot-nox, in the quickstart's
# list). Prints TAP; the plan comes last. Takes a few seconds.
. "${top_srcdir:-.}/tests/cli_tap.sh"
cli_tap_setup cli-plot
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "Bail out! gnuplot is not installed (Debian: apt-get install gnuplot-nox)"
    exit 1
fi
# A PNG: the 8-byte signature, then the IHDR chunk with width and height (big-endian).
is_png() { [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ]; }
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", $1*16777216 + $2*65536 + $3*256 + $4, $5*16777216 + $6*65536 + $7*256 + $8 }'; }
nothing_left() { # nothing_left PREFIX: no file PREFIX.* and no hidden partial or temporary
    [ -z "$(ls -A "$tmp" | grep -e "^$1\." -e "^\.$1\.")" ]
}

ring="--model gmm:ring8 --n 2000 --seed 1"

# ---- pictures --------------------------------------------------------------------------------
status_is "ring8, pc, --plot --plot-paths 8" 0 "$bin" sample $ring --steps 200 --out "$tmp/a.npy" --report "$tmp/a.json" --plot "$tmp/a.png" --plot-paths 8
check "...a PNG of 900x820 (the 2-D layout)" 'is_png "$tmp/a.png" && [ "$(png_size "$tmp/a.png")" = 900x820 ]'
check "...the summary names the picture" 'grep -q "the picture to $tmp/a.png" "$tmp/out.txt"'
check "...no partial file left beside it" '[ -z "$(ls -A "$tmp" | grep partial)" ]'
check "...the report records plot and plot_paths" 'grep -q "\"plot\": \"$tmp/a.png\"" "$tmp/a.json" && grep -q "\"plot_paths\": 8" "$tmp/a.json"'
status_is "ring8, adaptive-sde, --plot-paths 4" 0 "$bin" sample $ring --sampler adaptive-sde --out "$tmp/b.npy" --plot "$tmp/b.png" --plot-paths 4 --quiet
check "...a 2-D PNG" 'is_png "$tmp/b.png" && [ "$(png_size "$tmp/b.png")" = 900x820 ]'
status_is "ring8, ode rk45 (paths: a separate solve), --plot-paths 8" 0 "$bin" sample $ring --sampler ode --out "$tmp/c.npy" --plot "$tmp/c.png" --plot-paths 8 --quiet
check "...a 2-D PNG" 'is_png "$tmp/c.png" && [ "$(png_size "$tmp/c.png")" = 900x820 ]'
status_is "ring8, ode euler 8 steps (paths along its own grid), --plot-paths 8" 0 "$bin" sample $ring --sampler ode --method euler --steps 8 --out "$tmp/d.npy" --plot "$tmp/d.png" --plot-paths 8 --quiet
check "...a 2-D PNG" 'is_png "$tmp/d.png"'
status_is "ring8, ode dpm-solver++2m with --denoise (against p0), --plot-paths 3" 0 "$bin" sample $ring --sampler ode --method dpm-solver++2m --denoise --out "$tmp/e.npy" --plot "$tmp/e.png" --plot-paths 3 --quiet
check "...a 2-D PNG" 'is_png "$tmp/e.png"'
"$bin" sample $ring --sampler ode --out "$tmp/c0.npy" --quiet
check "--plot and --plot-paths do not change the samples (ode rk45)" 'cmp -s "$tmp/c.npy" "$tmp/c0.npy"'
"$bin" sample $ring --steps 200 --out "$tmp/a0.npy" --quiet
check "--plot and --plot-paths do not change the samples (pc)" 'cmp -s "$tmp/a.npy" "$tmp/a0.npy"'
status_is "random:16,4,3 (d > 2): pairwise scatters and marginals" 0 "$bin" sample --model gmm:random:16,4,3 --n 1000 --steps 100 --out "$tmp/h.npy" --plot "$tmp/h.png" --quiet
check "...a PNG of 1200x760 (the 2 x 3 layout)" 'is_png "$tmp/h.png" && [ "$(png_size "$tmp/h.png")" = 1200x760 ]'
status_is "random:1,3,5 (d = 1): histogram over the exact density" 0 "$bin" sample --model gmm:random:1,3,5 --n 1000 --sampler ode --out "$tmp/o.npy" --plot "$tmp/o.png" --quiet
check "...a PNG of 1200x760" 'is_png "$tmp/o.png" && [ "$(png_size "$tmp/o.png")" = 1200x760 ]'
status_is "--from-report with --plot adds a picture to a run that had none" 0 "$bin" sample --from-report "$tmp/a.json" --out "$tmp/f.npy" --report "$tmp/f.json" --plot "$tmp/f.png" --quiet
check "...a PNG, and the same samples" 'is_png "$tmp/f.png" && cmp -s "$tmp/a.npy" "$tmp/f.npy"'

# ---- complete or absent ----------------------------------------------------------------------
# A PATH with every program of the current one except gnuplot (the libtool wrapper of an
# uninstalled diffsde needs the usual tools).
mkdir "$tmp/bin-nognuplot" "$tmp/bin-fail" "$tmp/bin-silent"
old_ifs=$IFS
IFS=:
for d in $PATH; do
    for f in "$d"/*; do
        b=${f##*/}
        case $b in gnuplot*) continue ;; esac
        [ -x "$f" ] && [ ! -e "$tmp/bin-nognuplot/$b" ] && ln -s "$f" "$tmp/bin-nognuplot/$b"
    done
done
IFS=$old_ifs
status_is "gnuplot missing: exit 1" 1 env PATH="$tmp/bin-nognuplot" "$bin" sample $ring --steps 50 --out "$tmp/g.npy" --report "$tmp/g.json" --plot "$tmp/g.png"
check "...says so and how to install it" 'grep -q "gnuplot not found.*gnuplot-nox" "$tmp/err.txt"'
check "...and writes nothing: no samples, report or picture" 'nothing_left g'
printf '#!/bin/sh\necho "gnuplot: made to fail" >&2\nexit 1\n' >"$tmp/bin-fail/gnuplot"
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin-silent/gnuplot"
chmod +x "$tmp/bin-fail/gnuplot" "$tmp/bin-silent/gnuplot"
status_is "gnuplot failing: exit 1" 1 env PATH="$tmp/bin-fail:$PATH" "$bin" sample $ring --steps 50 --out "$tmp/k.npy" --report "$tmp/k.json" --plot "$tmp/k.png"
check "...its message is shown, and nothing is written, no partial PNG left" 'grep -q "made to fail" "$tmp/err.txt" && nothing_left k'
status_is "gnuplot writing nothing: exit 1" 1 env PATH="$tmp/bin-silent:$PATH" "$bin" sample $ring --steps 50 --out "$tmp/m.npy" --report "$tmp/m.json" --plot "$tmp/m.png"
check "...and nothing is written" 'grep -q "without writing" "$tmp/err.txt" && nothing_left m'
status_is "--plot in a missing directory: exit 1 before sampling" 1 "$bin" sample $ring --steps 50 --out "$tmp/q.npy" --plot "$tmp/nodir/q.png"
check "...and nothing is written" 'nothing_left q && grep -q "nodir" "$tmp/err.txt"'
printf 'old' >"$tmp/keep.png"
status_is "a failed plot leaves an existing picture alone" 1 env PATH="$tmp/bin-fail:$PATH" "$bin" sample $ring --steps 50 --out "$tmp/r.npy" --plot "$tmp/keep.png"
check "...untouched" '[ "$(cat "$tmp/keep.png")" = old ]'

# ---- usage errors ------------------------------------------------------------------------------
usage() { # usage DESCRIPTION PATTERN ARGS...
    desc=$1 pat=$2
    shift 2
    status_is "$desc: exit 2" 2 "$bin" sample "$@"
    check "...says '$pat', writes nothing" 'grep -q -- "$pat" "$tmp/err.txt" && nothing_left u'
}
usage "--plot-paths without --plot" "needs --plot" $ring --out "$tmp/u.npy" --plot-paths 3
usage "--plot-paths 65" "at most 64" $ring --out "$tmp/u.npy" --plot "$tmp/u.png" --plot-paths 65
usage "--plot-paths -1" "not a non-negative integer" $ring --out "$tmp/u.npy" --plot "$tmp/u.png" --plot-paths -1
usage "--plot-paths with a 3-D model" "2-D models only" --model gmm:random:3,2,1 --n 10 --out "$tmp/u.npy" --plot "$tmp/u.png" --plot-paths 2
usage "--plot = --out" "name the same file" $ring --out "$tmp/u.npy" --plot "$tmp/u.npy"
usage "--plot = --report" "name the same file" $ring --out "$tmp/u.npy" --report "$tmp/u.png" --plot "$tmp/u.png"

echo "1..$n"
[ "$fails" -eq 0 ]
