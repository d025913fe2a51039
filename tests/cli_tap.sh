# Sourced by the command's shell tests (tests/test_cli_*.sh): TAP output and the common set-up.
# Call `cli_tap_setup NAME` first: it sets $bin (the diffsde under test, an absolute path, so
# that tests may cd) and $tmp (a private directory, removed on exit), and zeroes the counters
# n (checks so far) and fails. Each script prints its plan ("1..$n") at the end and exits with
# [ "$fails" -eq 0 ].

cli_tap_setup() {
    bin=${top_builddir:-.}/diffsde
    case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/diffsde-$1.XXXXXX") || exit 99
    trap 'rm -rf "$tmp"' EXIT
    n=0
    fails=0
}

ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; fails=$((fails + 1)); }
# check DESCRIPTION SHELL-CONDITION: ok when the condition (eval'd) holds.
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }
# status_is DESCRIPTION EXPECTED COMMAND...: the command exits with EXPECTED; otherwise its
# stderr is shown as TAP comments.
status_is() {
    desc=$1 want=$2
    shift 2
    "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
    got=$?
    if [ "$got" -eq "$want" ]; then ok "$desc"; else
        notok "$desc (exit $got, expected $want)"
        sed 's/^/# /' "$tmp/err.txt"
    fi
}
