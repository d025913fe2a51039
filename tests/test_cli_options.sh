#!/bin/sh
# Every option of every subcommand, with a valid and with an invalid value. The options are
# read from each subcommand's --help (lines "  --name ..."), so an option added to a --help
# without a row in the table below makes this test fail, and so does a row whose option no
# --help lists any more. A valid value must exit 0; an invalid one must exit with the status
# of its row (2: usage error, 1: the run failed — a file that cannot be read or written) and
# print "diffsde SUB: ..." on stderr, naming the option or the value for usage errors.
# Runs are tiny (4-point inputs, few steps). Prints TAP; the plan comes last.
. "${top_srcdir:-.}/tests/cli_tap.sh"
cli_tap_setup cli-options
cd "$tmp" || exit 1

# Inputs: 4 points of ring8 (CSV) and a report to rerun.
"$bin" gmm sample --model gmm:ring8 --n 4 --seed 1 --out x.csv || { echo "Bail out! gmm sample"; exit 1; }
"$bin" gmm sample --model gmm:ring8 --n 4 --seed 1 --out x.npy
"$bin" sample --model gmm:ring8 --n 4 --steps 30 --predictor euler-maruyama --out r0.npy \
    --report r0.json --quiet || { echo "Bail out! sample for the report"; exit 1; }
have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1

# The table: SUB|OPTION|BASE|VALID ARGS|INVALID ARGS|INVALID STATUS. BASE "base" prepends the
# subcommand's base arguments below (later values win: getopt keeps the last), "-" does not.
sample_base="--model gmm:ring8 --n 4 --seed 1 --out s.npy --quiet"
coder_base="--model gmm:ring8 --in x.csv --out z.npy --quiet"
loglik_base="--model gmm:ring8 --in x.csv --out l.npy --quiet"
demo_base="--n 400 --quiet"
table='
sample|--model|base|--model gmm:gauss1|--model gmm:nonesuch|1
sample|--sde|base|--sde ve|--sde nonesuch|2
sample|--sde-param|base|--sde-param beta_max=15|--sde-param beta_max|2
sample|--sampler|base|--sampler adaptive-sde|--sampler nonesuch|2
sample|--predictor|base|--predictor euler-maruyama|--predictor nonesuch|2
sample|--corrector|base|--corrector ald|--corrector nonesuch|2
sample|--snr|base|--snr 0.2|--snr -1|2
sample|--steps|base|--steps 50|--steps 1|2
sample|--corrector-steps|base|--corrector-steps 2|--corrector-steps 0|2
sample|--eps|base|--eps 0.01|--eps 2|2
sample|--denoise|base|--denoise|--denoise=yes|2
sample|--no-denoise|base|--no-denoise|--no-denoise=yes|2
sample|--rtol|base|--sampler adaptive-sde --rtol 0.1|--sampler adaptive-sde --rtol 0|2
sample|--atol|base|--sampler adaptive-sde --atol 0.02|--sampler adaptive-sde --atol -0.1|2
sample|--reference|base|--reference|--reference=yes|2
sample|--batch-norms|base|--batch-norms|--batch-norms=yes|2
sample|--method|base|--sampler ode --method heun --steps 5|--sampler ode --method nonesuch|2
sample|--grid|base|--sampler ode --method euler --steps 5 --grid logsnr|--sampler ode --method euler --grid nonesuch|2
sample|--rho|base|--sampler ode --method euler --steps 5 --grid karras --rho 5|--sampler ode --method euler --grid karras --rho 0|2
sample|--whole-batch|base|--sampler ode --whole-batch|--sampler ode --whole-batch=yes|2
sample|--n|base|--n 3|--n 0|2
sample|--seed|base|--seed 7|--seed -1|2
sample|--out|base|--out s.csv|--out nodir/s.npy|1
sample|--report|base|--report s.json|--report s.npy|2
sample|--plot|base|--plot p.png|--plot nodir/p.png|1
sample|--plot-paths|base|--plot p.png --plot-paths 2|--plot p.png --plot-paths 65|2
sample|--from-report|-|--from-report r0.json --out fr.npy --report fr.json|--from-report x.npy|1
sample|--quiet|base|--quiet|--quiet=yes|2
sample|--help|-|--help|--help=yes|2
loglik|--model|base|--model gmm:gauss1|--model gmm:nonesuch|1
loglik|--sde|base|--sde ve|--sde nonesuch|2
loglik|--sde-param|base|--sde-param beta_min=0.2|--sde-param nonesuch=1|2
loglik|--eps|base|--eps 1e-4|--eps 0|2
loglik|--divergence|base|--divergence hutchinson|--divergence nonesuch|2
loglik|--probes|base|--divergence hutchinson --probes 2|--divergence hutchinson --probes 0|2
loglik|--probe|base|--divergence hutchinson --probe gaussian|--divergence hutchinson --probe nonesuch|2
loglik|--terminal|base|--terminal exact|--terminal nonesuch|2
loglik|--bin-width|base|--bin-width 0.01|--bin-width -1|2
loglik|--dequantize|base|--bin-width 0.01 --dequantize|--dequantize|2
loglik|--seed|base|--divergence hutchinson --seed 3|--divergence hutchinson --seed x|2
loglik|--method|base|--method heun --steps 5|--method nonesuch|2
loglik|--rtol|base|--rtol 1e-4|--rtol 0|2
loglik|--atol|base|--atol 1e-4|--atol 0|2
loglik|--steps|base|--method euler --steps 5|--method euler --steps 0|2
loglik|--in|base|--in x.npy|--in missing.npy|1
loglik|--out|base|--out l.csv|--out nodir/l.npy|1
loglik|--report|base|--report l.json|--report x.csv|2
loglik|--quiet|base|--quiet|--quiet=yes|2
loglik|--help|-|--help|--help=yes|2
encode|--model|base|--model gmm:gauss1|--model gmm:nonesuch|1
encode|--sde|base|--sde subvp|--sde nonesuch|2
encode|--sde-param|base|--sde-param beta_max=10|--sde-param beta_max=x|2
encode|--eps|base|--eps 0.01|--eps -1|2
encode|--method|base|--method rk4 --steps 4|--method nonesuch|2
encode|--rtol|base|--rtol 1e-3|--rtol x|2
encode|--atol|base|--atol 1e-3|--atol 0|2
encode|--whole-batch|base|--whole-batch|--method euler --whole-batch|2
encode|--steps|base|--method euler --steps 4|--method euler --steps 0|2
encode|--grid|base|--method euler --steps 4 --grid logsnr|--method euler --grid nonesuch|2
encode|--rho|base|--method euler --steps 4 --grid karras --rho 3|--method euler --steps 4 --rho 3|2
encode|--in|base|--in x.npy|--in missing.csv|1
encode|--out|base|--out z.csv|--out nodir/z.npy|1
encode|--report|base|--report z.json|--report z.npy|2
encode|--quiet|base|--quiet|--quiet=yes|2
encode|--help|-|--help|--help=yes|2
decode|--model|base|--model gmm:gauss1|--model gmm:nonesuch|1
decode|--sde|base|--sde ve|--sde nonesuch|2
decode|--sde-param|base|--sde-param beta_min=0.05|--sde-param =1|2
decode|--eps|base|--eps 0.01|--eps 5|2
decode|--method|base|--method ddim --steps 4|--method nonesuch|2
decode|--rtol|base|--rtol 1e-3|--rtol 0|2
decode|--atol|base|--atol 1e-3|--atol x|2
decode|--whole-batch|base|--whole-batch|--whole-batch=yes|2
decode|--steps|base|--method heun --steps 3|--method heun --steps x|2
decode|--grid|base|--method heun --steps 3 --grid karras|--method heun --grid nonesuch|2
decode|--rho|base|--method edm-heun --steps 3 --rho 5|--method edm-heun --rho -1|2
decode|--in|base|--in x.npy|--in missing.npy|1
decode|--out|base|--out x2.csv|--out nodir/x2.npy|1
decode|--report|base|--report d.json|--report x.csv|2
decode|--quiet|base|--quiet|--quiet=yes|2
decode|--help|-|--help|--help=yes|2
gmm|--model|-|describe --model gmm:gauss1|describe --model gmm:nonesuch|1
gmm|--sde|-|describe --model gmm:ring8 --sde vp --t 0.5|describe --model gmm:ring8 --sde nonesuch --t 0.5|2
gmm|--sde-param|-|describe --model gmm:ring8 --sde vp --t 0.5 --sde-param beta_max=10|describe --model gmm:ring8 --sde vp --t 0.5 --sde-param beta_max|2
gmm|--t|-|logpdf --model gmm:ring8 --sde ve --t 0.3 --in x.csv --out g.npy|logpdf --model gmm:ring8 --sde ve --t 2 --in x.csv --out g.npy|2
gmm|--in|-|score --model gmm:ring8 --in x.npy --out g.csv|score --model gmm:ring8 --in missing.npy --out g.csv|1
gmm|--out|-|sample --model gmm:ring8 --n 3 --out g.csv|sample --model gmm:ring8 --n 3 --out nodir/g.npy|1
gmm|--n|-|sample --model gmm:ring8 --n 5 --out g.npy|sample --model gmm:ring8 --n 0 --out g.npy|2
gmm|--seed|-|sample --model gmm:ring8 --n 5 --seed 4 --out g.npy|sample --model gmm:ring8 --n 5 --seed x --out g.npy|2
gmm|--help|-|--help|--help=yes|2
demo|--n|base|--n 400|--n 1|2
demo|--out|base|--out dm.npy|--out nodir/dm.npy|1
demo|--report|base|--report dm.json|--report nodir/dm.json|1
demo|--quiet|base|--quiet|--quiet=yes|2
demo|--sde-table|-|--sde-table|--sde-table --n 5|2
demo|--help|-|--help|--help=yes|2
version|--help|-|--help|--bogus|2
'

# ---- every option of every --help has a row, every row an option ------------------------------
for sub in sample loglik encode decode gmm demo version; do
    "$bin" $sub --help | sed -n 's/^  \(--[a-z][a-z0-9-]*\).*/\1/p' | sort -u >"help.$sub"
    echo "$table" | awk -F'|' -v s="$sub" '$1 == s { print $2 }' | sort -u >"rows.$sub"
    missing=$(comm -23 "help.$sub" "rows.$sub" | tr '\n' ' ')
    stale=$(comm -13 "help.$sub" "rows.$sub" | tr '\n' ' ')
    if [ -s "help.$sub" ] && [ -z "$missing" ]; then ok "$sub: every option of --help has a row ($(wc -l <"help.$sub") options)"; else
        notok "$sub: options of --help without a row in the table: $missing"
    fi
    if [ -z "$stale" ]; then ok "$sub: every row names an option of --help"; else
        notok "$sub: rows for options --help does not list: $stale"
    fi
done

# ---- the runs ----------------------------------------------------------------------------------
run() { # run SUB BASE ARGS: sets got, leaves stdout/stderr in out.txt/err.txt
    sub=$1 base=$2 args=$3
    pre=""
    if [ "$base" = base ]; then
        eval "pre=\$${sub}_base"
        case $sub in encode | decode) pre=$coder_base ;; esac
    fi
    # shellcheck disable=SC2086 # word splitting of the table's arguments is intended
    "$bin" $sub $pre $args >out.txt 2>err.txt
    got=$?
}
while IFS='|' read -r sub opt base valid invalid want; do
    [ -n "$sub" ] || continue
    if [ "$opt" = "--plot" ] || [ "$opt" = "--plot-paths" ]; then
        if [ "$have_gnuplot" -eq 0 ]; then
            ok "$sub $opt # SKIP gnuplot is not installed (Debian: gnuplot-nox)"
            ok "$sub $opt # SKIP gnuplot is not installed (Debian: gnuplot-nox)"
            continue
        fi
    fi
    run "$sub" "$base" "$valid"
    if [ "$got" -eq 0 ]; then ok "$sub $opt: valid '$valid' succeeds"; else
        notok "$sub $opt: valid '$valid' (exit $got, expected 0)"
        sed 's/^/# /' err.txt
    fi
    run "$sub" "$base" "$invalid"
    name=${opt#--}
    value=${invalid##* }
    if [ "$got" -eq "$want" ] && grep -q "^diffsde $sub: " err.txt &&
        { [ "$want" -ne 2 ] || grep -q -e "$name" -e "$value" err.txt; }; then
        ok "$sub $opt: invalid '$invalid' exits $want with a message"
    else
        notok "$sub $opt: invalid '$invalid' (exit $got, expected $want with a message naming $opt or '$value')"
        sed 's/^/# /' err.txt
    fi
done <<EOF
$table
EOF
echo "1..$n"
[ "$fails" -eq 0 ]
