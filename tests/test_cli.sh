#!/bin/sh
# The diffsde command: every subcommand's --help, the demo (a short sampling run with its
# metrics table, and the forward-SDE self-check of --sde-table), and usage errors (exit status
# 2) for unknown commands and unexpected arguments. Prints TAP.
bin=${top_builddir:-.}/diffsde
tmp=$(mktemp -d "${TMPDIR:-/tmp}/diffsde-cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
n=0
fails=0
check() { # check DESCRIPTION EXPECTED_STATUS COMMAND...
    desc=$1 want=$2
    shift 2
    n=$((n + 1))
    out=$("$@" 2>&1)
    got=$?
    if [ "$got" -eq "$want" ]; then
        echo "ok $n - $desc"
    else
        echo "not ok $n - $desc (exit $got, expected $want)"
        echo "$out" | sed 's/^/# /'
        fails=$((fails + 1))
    fi
}
contains() { # contains DESCRIPTION PATTERN COMMAND...
    desc=$1 pat=$2
    shift 2
    n=$((n + 1))
    if "$@" 2>&1 | grep -q -- "$pat"; then
        echo "ok $n - $desc"
    else
        echo "not ok $n - $desc (no '$pat' in the output)"
        fails=$((fails + 1))
    fi
}
echo "1..45"
check "no arguments is a usage error" 2 "$bin"
check "--help succeeds" 0 "$bin" --help
contains "--help lists demo" "demo" "$bin" --help
contains "--help lists sample" "sample" "$bin" --help
check "unknown command is a usage error" 2 "$bin" frobnicate
contains "unknown command names itself" "frobnicate" "$bin" frobnicate
check "version succeeds" 0 "$bin" version
contains "version prints the version" "diffsde [0-9]" "$bin" version
check "version rejects arguments" 2 "$bin" version --bogus
check "version --help succeeds" 0 "$bin" version --help
for sub in sample gmm demo; do
    check "$sub --help succeeds" 0 "$bin" $sub --help
done
# Every subcommand's --help documents the exit statuses and gives an example.
for sub in sample loglik encode decode gmm demo version; do
    contains "$sub --help documents the exit statuses" "exit status: 0 success" "$bin" $sub --help
    contains "$sub --help gives an example" "^example" "$bin" $sub --help
done

# The demo, shortened to 400 samples (the default 10000 take about 6 s).
demo="$bin demo --n 400 --quiet --out $tmp/demo.npy --report $tmp/demo.json"
$demo >"$tmp/demo.txt" 2>&1
got=$?
n=$((n + 1))
if [ "$got" -eq 0 ]; then echo "ok $n - demo --n 400 succeeds"; else
    echo "not ok $n - demo --n 400 succeeds (exit $got)"
    sed 's/^/# /' "$tmp/demo.txt"
    fails=$((fails + 1))
fi
for pat in "empty components" "occupancy vs exact set" "sliced W2 .*exact vs exact" \
    "energy distance .*p = " "mean error" "covariance rel. error" "mean log p0 .*(exact " \
    "samples (400 x 2, float64, .npy): $tmp/demo.npy" "report (.*): $tmp/demo.json"; do
    contains "demo prints '$pat'" "$pat" cat "$tmp/demo.txt"
done
n=$((n + 1))
if [ "$(wc -c <"$tmp/demo.npy")" -eq $((128 + 400 * 16)) ] && grep -q '"program": "diffsde demo"' "$tmp/demo.json"; then
    echo "ok $n - demo wrote the samples and the report"
else
    echo "not ok $n - demo wrote the samples and the report"
    fails=$((fails + 1))
fi
check "demo --sde-table succeeds" 0 "$bin" demo --sde-table
contains "demo --sde-table reports all checks passed" "all checks passed" "$bin" demo --sde-table
contains "demo --sde-table prints the VP table" "^vp" "$bin" demo --sde-table
check "demo rejects unknown options" 2 "$bin" demo --frobnicate
check "demo rejects --n 1" 2 "$bin" demo --n 1
check "demo --sde-table takes no other option" 2 "$bin" demo --sde-table --n 5
contains "demo --help gives an example" "example" "$bin" demo --help
[ "$fails" -eq 0 ]
