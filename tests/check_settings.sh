#!/usr/bin/env bash
# Every setting the tree reads is in the table of known names
# (runtime/common/setting_names.c), so that hps can tell a misspelt HPS_*
# variable or --hps-name flag from a real one. Reads of a setting are
# hpsi_setting("NAME"), hpsi_setting_u64("NAME", ...), getenv("HPS_NAME")
# in C, and $HPS_NAME / HPS_NAME= in scripts. Prints each missing name and
# exits 1 if any.
set -u
cd "$(dirname "$0")/.."
table=runtime/common/setting_names.c
known=$(sed -n '/known\[\] = {/,/^};/p' "$table" | grep -oE '"[A-Z0-9_]+"' | tr -d '"' | sort -u)
[ -n "$known" ] || { echo "check_settings: no table in $table"; exit 1; }
read_c=$(grep -rhoE 'hpsi_setting(_u64)?\("[A-Z0-9_]+"|getenv\("HPS_[A-Z0-9_]+"' \
	--include='*.c' --include='*.h' runtime shm net include examples bench tests/harness.c |
	grep -oE '"[A-Z0-9_]+"' | tr -d '"' | sed 's/^HPS_//')
read_sh=$(grep -rhoE '\$\{?HPS_[A-Z0-9_]+|HPS_[A-Z0-9_]+=' --include='*.sh' --include=Makefile --exclude=check_settings.sh \
	. .ci 2>/dev/null |
	grep -oE 'HPS_[A-Z0-9_]+' | sed 's/^HPS_//')
bad=0
for name in $(printf '%s\n%s\n' "$read_c" "$read_sh" | sort -u); do
	if ! printf '%s\n' "$known" | grep -qx "$name"; then
		echo "HPS_$name is read but missing from the table in $table"
		bad=1
	fi
done
exit $bad
