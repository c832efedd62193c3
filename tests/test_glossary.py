"""One glossary: the README's table is beta_core.glossary, and the pages' `?` read it."""
from pathlib import Path

from beta_core.glossary import GLOSSARY, markdown, term

ROOT = Path(__file__).resolve().parents[1]


def test_readme_glossary_is_the_module():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Glossary"):readme.index("## Architecture")]
    assert markdown() in section, "README's Glossary differs from beta_core.glossary: paste glossary.markdown()"


def test_every_term_is_plain_and_complete():
    for key, (name, text, code) in GLOSSARY.items():
        assert name and code and len(text) > 20, key
    assert "**damping ratio ζ**" in term("zeta") and "**probe score**" in term("zeta", "probe")


def test_the_pages_use_the_glossary():
    """Each page (a file app.py routes to) puts glossary text behind the `?` of its technical
    terms, itself or in the views it imports from pages/views/."""
    import re

    pages = re.findall(r'st\.Page\("pages/views/(\w+)\.py"', (ROOT / "app.py").read_text())
    assert len(pages) >= 8

    def uses(name: str) -> int:
        text = (ROOT / "pages" / "views" / f"{name}.py").read_text()
        parts = set(re.findall(r"^from pages\.views\.(\w+) import", text, re.M)) - {"common"}
        return text.count("term(") + sum((ROOT / "pages" / "views" / f"{p}.py").read_text().count("term(")
                                         for p in parts)
    used = {p: uses(p) for p in pages}
    assert all(n > 0 for n in used.values()), used
