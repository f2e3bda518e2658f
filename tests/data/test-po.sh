#!/usr/bin/env bash
# test-po.sh SRCDIR - every message in the sources is translated in every po/*.po in LINGUAS,
# none is fuzzy, each translation passes msgfmt --check, and POTFILES.in lists every source
# file with strings for people, sorted. Works in a temporary directory; SRCDIR is untouched.
set -u

srcdir=$1
for tool in xgettext msgmerge msgattrib msgfmt; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "skipped: $tool is not installed (gettext, in tools/deps.sh)"
    exit 77
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# POTFILES.in: sorted, and complete. C files are found by their _() calls, .ui files by their
# translatable properties; the data files are listed by hand and must exist.
grep -v '^#' "$srcdir/po/POTFILES.in" | sed '/^$/d' >"$tmp/listed"
if ! LC_ALL=C sort -c "$tmp/listed" 2>/dev/null; then
  echo "po/POTFILES.in is not sorted (LC_ALL=C sort)"
  failed=1
fi
while read -r file; do
  if [ ! -f "$srcdir/$file" ]; then
    echo "po/POTFILES.in lists $file, which does not exist"
    failed=1
  fi
done <"$tmp/listed"
(cd "$srcdir" &&
  { grep -l -E '\b(N|C|NC)?_ \(' app/*.c 2>/dev/null
    grep -rl 'translatable="yes"' app --include='*.ui' 2>/dev/null; } | LC_ALL=C sort -u) \
  >"$tmp/needed"
missing=$(LC_ALL=C comm -23 "$tmp/needed" <(LC_ALL=C sort "$tmp/listed"))
if [ -n "$missing" ]; then
  echo "po/POTFILES.in misses files with translatable strings:"
  echo "$missing" | sed 's/^/  /'
  failed=1
fi

# The same keywords as i18n.gettext(preset: 'glib'); the ITS rules for .ui, .desktop,
# .metainfo.xml and .gschema.xml come with gettext, GTK, AppStream and GLib.
if ! (cd "$srcdir" && xgettext --from-code=UTF-8 --add-comments \
        --keyword=_ --keyword=N_ --keyword=C_:1c,2 --keyword=NC_:1c,2 \
        --keyword=g_dcgettext:2 --keyword=g_dngettext:2,3 --keyword=g_dpgettext2:2c,3 \
        --files-from=po/POTFILES.in --output="$tmp/magpie.pot"); then
  echo "xgettext failed"
  exit 1
fi
echo "$(grep -c '^msgid ' "$tmp/magpie.pot") messages in the sources (header included)"

for lang in $(sed 's/#.*//' "$srcdir/po/LINGUAS"); do
  po="$srcdir/po/$lang.po"
  if [ ! -f "$po" ]; then
    echo "$lang: po/LINGUAS names it but po/$lang.po does not exist"
    failed=1
    continue
  fi
  if ! msgfmt --check --output-file=/dev/null "$po"; then
    echo "$lang: msgfmt --check failed on po/$lang.po"
    failed=1
  fi
  msgmerge --quiet --output-file="$tmp/$lang.po" "$po" "$tmp/magpie.pot"
  untranslated=$(msgattrib --untranslated --no-obsolete --no-wrap "$tmp/$lang.po" |
                 grep -A1 '^msgctxt \|^msgid ' | grep -v '^msgid ""$\|^--$\|^msgstr')
  fuzzy=$(msgattrib --only-fuzzy --no-obsolete --no-wrap "$tmp/$lang.po" |
          grep '^msgid ' | grep -v '^msgid ""$')
  if [ -n "$untranslated" ]; then
    echo "$lang: untranslated:"
    echo "$untranslated" | sed 's/^/  /'
    failed=1
  fi
  if [ -n "$fuzzy" ]; then
    echo "$lang: fuzzy (the source changed; check and update the translation):"
    echo "$fuzzy" | sed 's/^/  /'
    failed=1
  fi
  if ! msgfmt --check --output-file=/dev/null "$tmp/$lang.po"; then
    echo "$lang: msgfmt --check failed on the merged translation"
    failed=1
  fi
  msgfmt --statistics --output-file=/dev/null "$tmp/$lang.po" 2>&1 | sed "s/^/$lang: /"
done

exit "$failed"
