#!/usr/bin/env bash
# make check-deps: every module includes only what DESIGN.md §8 allows.
#   base <- proto <- shard <- consensus <- replication <- node
#   client uses proto and base; ctl and bench use only include/memcoord.h.
# A module may include its own headers, and of another module only its one
# exported header <mod>/<mod>.h (STYLE.md §2.1). Exits 1 on a violation.
set -u
cd "$(dirname "$0")/.."

declare -A allowed=(
  [base]="base"
  [proto]="base proto"
  [shard]="base proto shard"
  [consensus]="base proto shard consensus"
  [replication]="base proto shard consensus replication"
  [node]="base proto shard consensus replication node"
  [client]="base proto client"
  [ctl]="ctl"
  [bench]="bench"
)

bad=0
for mod in "${!allowed[@]}"; do
  [ -d "$mod" ] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"${line#*:}")
    [ -n "$inc" ] || continue
    case "$inc" in
      memcoord.h) continue ;;                   # the public API: anyone
      memcoord.pb-c.h) dep=proto ;;             # generated code of proto/
      */*) dep=${inc%%/*} ;;
      *) dep=$mod ;;                            # same-folder include
    esac
    ok=0
    for a in ${allowed[$mod]}; do [ "$a" = "$dep" ] && ok=1; done
    if [ $ok -eq 0 ]; then
      echo "check-deps: $file includes \"$inc\": $mod may not depend on $dep"
      bad=1
    elif [ "$dep" != "$mod" ] && [ "$inc" != "$dep/$dep.h" ] && [ "$inc" != memcoord.pb-c.h ]; then
      echo "check-deps: $file includes \"$inc\": only $dep/$dep.h is exported"
      bad=1
    fi
  done < <(grep -H '#[[:space:]]*include[[:space:]]*"' "$mod"/*.c "$mod"/*.h 2>/dev/null)
done
[ $bad -eq 0 ] && echo "check-deps: ok"
exit $bad
