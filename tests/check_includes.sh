#!/usr/bin/env bash
# The include rule of docs/DESIGN.md ("Data flows one way"), checked on every quoted #include of the
# rooms' .c and .h files: a file may include its own room and the rooms `allowed` gives its room below,
# never one above it (reading finished runs, probes/report/ never includes model/: it builds no model).
# Programs (main_*.c) may include any room; tests/ and fuzz/ sit above every room.
#
# Prints each include that points the wrong way (file:line, the include, the rule) and exits 1; a .c
# or .h in a folder the table does not name is an error too, so a new room must be placed. Run from
# the repository root, or give the root as $1 (make test runs it first).
set -u
cd "${1:-.}" || exit 2

declare -A allowed=(
    [common]=""
    [model]="common"
    [data]="common"
    [probes]="common model data"
    [train]="common model data probes"
    [probes/report]="common probes train"
)
# folders with C sources outside the rule: the tests and the fuzz target include whatever they test
outside="tests fuzz"

# ROOM = the room of a path relative to the root: probes/report for a file under probes/report/, else its
# first folder ("." for a file at the root)
room_of() {
    case "$1" in
    probes/report/*) ROOM=probes/report ;;
    */*) ROOM=${1%%/*} ;;
    *) ROOM=. ;;
    esac
}
# NORM = the path with its . and .. segments resolved (textually, as the compiler does)
norm() {
    local IFS=/ seg
    local -a out=()
    for seg in $1; do
        case "$seg" in
        '' | .) ;;
        ..) [ ${#out[@]} -gt 0 ] && unset 'out[${#out[@]}-1]' ;;
        *) out+=("$seg") ;;
        esac
    done
    NORM="${out[*]}"
}

bad=0 files=0
for f in */*.[ch] */*/*.[ch]; do
    [ -f "$f" ] || continue
    case "$f" in build*/* | bin/*) continue ;; esac
    room_of "$f"
    room=$ROOM
    [[ " $outside " == *" $room "* ]] && continue
    if [ -z "${allowed[$room]+set}" ]; then
        echo "$f: folder ${f%/*}/ is not a room of tests/check_includes.sh (place it in the layers)"
        bad=$((bad + 1))
        continue
    fi
    files=$((files + 1))
    case "${f##*/}" in main_*.c) continue ;; esac
    dir=${f%/*}
    while IFS=: read -r line inc; do
        norm "$dir/$inc"
        room_of "$NORM"
        to=$ROOM
        [ "$to" = "$room" ] && continue
        [[ " ${allowed[$room]} " == *" $to "* ]] && continue
        may="no other room"
        [ -n "${allowed[$room]}" ] && may="only$(for r in ${allowed[$room]}; do printf ' %s/' "$r"; done)"
        echo "$f:$line: #include \"$inc\": $room/ may include $may, not $to/ (docs/DESIGN.md: Data flows one way)"
        bad=$((bad + 1))
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1:\2/')
done
if [ "$bad" -gt 0 ]; then
    echo "includes: $bad pointing the wrong way"
    exit 1
fi
echo "includes: $files files of the rooms, every include points down the layers"
