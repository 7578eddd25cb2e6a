"""The pieces both web faces share (schema/web.py, schema/catalogs.py)."""

from __future__ import annotations

from pathlib import Path

from schema import catalogs, web


def test_csrf_token_is_bound_to_its_session() -> None:
    key = b"k" * 32
    token = web.csrf_token(key, "session-a")
    assert web.csrf_ok(key, "session-a", token)
    assert not web.csrf_ok(key, "session-b", token)
    assert not web.csrf_ok(b"x" * 32, "session-a", token)
    assert not web.csrf_ok(key, "session-a", None)
    assert not web.csrf_ok(key, "session-a", "")


def test_host_allowlist_defeats_rebinding_names() -> None:
    allowed = ["127.0.0.1:8765", "localhost:8765"]
    assert web.host_allowed("127.0.0.1:8765", allowed)
    assert web.host_allowed("LOCALHOST:8765", allowed)
    assert not web.host_allowed("evil.example:8765", allowed)
    assert not web.host_allowed("127.0.0.1:9999", allowed)
    assert not web.host_allowed(None, allowed)


def test_locale_negotiation_prefers_the_users_choice() -> None:
    assert web.negotiate("zh_CN", "en-GB") == "zh_CN"
    assert web.negotiate(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh_CN"
    assert web.negotiate("klingon", "fr-FR,en;q=0.5") == "en"
    assert web.negotiate(None, None) == "en"


def test_catalogs_extract_translate_and_render(tmp_path: Path) -> None:
    root = tmp_path / "face"
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "page.html").write_text(
        "<h1>{{ _('Customers') }}</h1><p>{% trans n=3 %}{{ n }} visits{% endtrans %}</p>"
        "<p>{{ when|datetime('short') }}</p>")
    (root / "views.py").write_text("from gettext import gettext as _\nMSG = _('Saved on this laptop')\n")
    missing = catalogs.update(root)
    assert sorted(missing["zh_CN"]) == ["%(n)s visits", "Customers", "Saved on this laptop"]
    po = catalogs.po_path(root, "zh_CN")
    text = po.read_text()
    for msgid, msgstr in [("Customers", "客户"), ("%(n)s visits", "%(n)s 次拜访"),
                          ("Saved on this laptop", "已保存在本机")]:
        text = text.replace(f'msgid "{msgid}"\nmsgstr ""', f'msgid "{msgid}"\nmsgstr "{msgstr}"')
    po.write_text(text)
    assert catalogs.untranslated(root) == []
    web.translations.cache_clear()
    pages = web.Pages(root / "templates", root / "locale")
    zh = pages.render("zh_CN", "page.html", when="2026-12-02T08:30:00+00:00")
    assert "<h1>客户</h1>" in zh and "3 次拜访" in zh and "2026" in zh
    en = pages.render("en", "page.html", when="2026-12-02T08:30:00+00:00")
    assert "<h1>Customers</h1>" in en and "3 visits" in en
    assert pages.gettext("zh_CN").gettext("Saved on this laptop") == "已保存在本机"
