"""Keep a web face's gettext catalogs in step with its templates and code: extract
every translatable string, merge it into the English and 简体中文 .po files (existing
translations kept, strings no longer used dropped), and list what still lacks a
Chinese translation. Used by `scripts/catalogs` and by the tests that fail when a
page shows an untranslated string."""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from .web import LOCALES

METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def extract(root: Path) -> Catalog:
    """Every string marked for translation under `root` (templates and Python)."""
    cat = Catalog(project="FieldVault", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(root), METHODS, options_map=OPTIONS,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}):
        cat.add(message, locations=[(filename, lineno)], auto_comments=comments, context=context)
    return cat


def po_path(root: Path, locale: str) -> Path:
    return root / "locale" / locale / "LC_MESSAGES" / "messages.po"


def update(root: Path) -> dict[str, list[str]]:
    """Merge the extracted strings into each locale's .po under `root`/locale; returns
    the msgids each locale lacks a translation for (English never lacks one: the msgid
    is the English text)."""
    template = extract(root)
    missing: dict[str, list[str]] = {}
    for locale in LOCALES:
        path = po_path(root, locale)
        if path.exists():
            with path.open("rb") as f:
                cat = read_po(f, locale=locale)
        else:
            cat = Catalog(locale=locale, project="FieldVault", charset="utf-8")
        cat.update(template, no_fuzzy_matching=True)
        cat.obsolete.clear()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, cat, omit_header=False, width=100, sort_output=True, include_lineno=False)
        if locale != "en":
            missing[locale] = untranslated_in(cat)
    return missing


def untranslated_in(cat: Catalog) -> list[str]:
    out = []
    for msg in cat:
        if not msg.id:
            continue
        strings = msg.string if isinstance(msg.string, tuple | list) else (msg.string,)
        if msg.fuzzy or not all(strings):
            out.append(str(msg.id if isinstance(msg.id, str) else msg.id[0]))
    return out


def untranslated(root: Path, locale: str = "zh_CN") -> list[str]:
    """Strings used under `root` that `locale`'s catalog does not translate (missing
    from the .po, empty or fuzzy). Does not write anything."""
    template = extract(root)
    path = po_path(root, locale)
    if not path.exists():
        return [str(m.id) for m in template if m.id]
    with path.open("rb") as f:
        cat = read_po(f, locale=locale)
    done = {m.id for m in cat if m.id and m.id not in set(untranslated_in(cat))}
    return sorted(str(m.id if isinstance(m.id, str) else m.id[0]) for m in template
                  if m.id and m.id not in done)
