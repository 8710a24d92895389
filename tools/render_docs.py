"""Render the documentation site without Quarto: every notebook `_quarto.yml` lists, converted to HTML by nbconvert,
with the site's sidebar (tutorials, pipelines, API reference) on every page.

Quarto renders the real site (`make docs`) but cannot be installed from PyPI; this fallback needs only the project's
own dependencies, so CI builds it and fails when a notebook under nbs/ has no page.

    .venv/bin/python tools/render_docs.py [--out _docs_html]
"""
import argparse
import glob
import html
import sys
from pathlib import Path

import nbformat
import yaml
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent


def expand(patterns) -> list[Path]:
    """The notebooks matched by `_quarto.yml` globs, in order, each once."""
    found = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        for p in sorted(glob.glob(str(ROOT / pattern))):
            if Path(p) not in found: found.append(Path(p))
    return found


def sidebar(config: dict) -> list[tuple[str, list[Path]]]:
    """The sidebar of `_quarto.yml` as (section title, notebooks)."""
    sections = []
    for item in config["website"]["sidebar"]["contents"]:
        if isinstance(item, str): sections.append(("", expand(item)))
        else: sections.append((item["section"], expand(item["contents"])))
    return sections


def page_name(nb: Path) -> str:
    return str(nb.relative_to(ROOT / "nbs").with_suffix(".html"))


def title(nb: Path, cells) -> str:
    for c in cells:
        if c.cell_type == "markdown" and c.source.startswith("# "): return c.source.splitlines()[0][2:].strip()
    return nb.stem


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "_docs_html", help="the folder to write the site into")
    args = ap.parse_args()
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    pages = expand(config["project"]["render"])
    sections = sidebar(config)
    notebooks = {p for p in (ROOT / "nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    unlisted = sorted(str(p.relative_to(ROOT)) for p in notebooks - set(pages))
    not_in_sidebar = sorted(str(p.relative_to(ROOT)) for p in set(pages) - {p for _, ps in sections for p in ps})
    if unlisted or not_in_sidebar:
        for p in unlisted: print(f"error: {p} has no page: add it to project.render in _quarto.yml", file=sys.stderr)
        for p in not_in_sidebar: print(f"error: {p} is not in the sidebar of _quarto.yml", file=sys.stderr)
        return 1
    exporter = HTMLExporter(template_name="lab")
    parsed = {p: nbformat.read(p, as_version=4) for p in pages}
    titles = {p: title(p, nb.cells) for p, nb in parsed.items()}
    for page, nb in parsed.items():
        name = page_name(page)
        up = "../" * name.count("/")
        nav = []
        for section, items in sections:
            if section: nav.append(f"<h4>{html.escape(section)}</h4>")
            nav.append("<ul>" + "".join(
                f'<li{" class=current" if p == page else ""}><a href="{up}{page_name(p)}">{html.escape(titles[p])}</a></li>'
                for p in items) + "</ul>")
        body, _ = exporter.from_notebook_node(nb)
        side = ('<nav style="position:fixed;top:0;left:0;width:230px;height:100%;overflow:auto;padding:12px;'
                'font:13px sans-serif;background:#f7f7f7;border-right:1px solid #ddd">'
                f'<h3><a href="{up}index.html">{html.escape(config["website"]["title"])}</a></h3>{"".join(nav)}</nav>')
        body = body.replace("</head>", "<style>body{margin-left:250px} li.current{font-weight:bold}</style></head>", 1)
        body = body.replace("<main>", "<main>" + side, 1) if "<main>" in body else body.replace("</body>", side + "</body>", 1)
        out = args.out / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body, encoding="utf-8")
    print(f"{len(pages)} pages in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
