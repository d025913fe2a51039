#!/bin/sh
# The diffsde command: every subcommand's --help, the demo's self-check, and usage errors
# (exit status 2) for unknown commands and unexpected arguments. Prints TAP.
bin=${top_builddir:-.}/diffsde
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
echo "1..14"
check "no arguments is a usage error" 2 "$bin"
check "--help succeeds" 0 "$bin" --help
contains "--help lists demo" "demo" "$bin" --help
check "unknown command is a usage error" 2 "$bin" frobnicate
contains "unknown command names itself" "frobnicate" "$bin" frobnicate
check "version succeeds" 0 "$bin" version
contains "version prints the version" "diffsde [0-9]" "$bin" version
check "version rejects arguments" 2 "$bin" version --bogus
check "version --help succeeds" 0 "$bin" version --help
check "demo succeeds" 0 "$bin" demo
contains "demo reports all checks passed" "all checks passed" "$bin" demo
contains "demo prints the VP table" "^vp" "$bin" demo
check "demo rejects unknown options" 2 "$bin" demo --frobnicate
contains "demo --help gives an example" "example" "$bin" demo --help
[ "$fails" -eq 0 ]
