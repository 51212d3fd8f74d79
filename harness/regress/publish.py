"""``harness regress publish``: asv's HTML site, made to open with no network.

``asv publish`` writes a static site (``html_dir`` of ``asv.conf.json``) whose ``index.html``
loads jQuery, flot and its plugins, stupidtable, blueimp-md5 and bootstrap from public CDNs.
:func:`publish` runs ``asv publish`` and then :func:`make_offline`, which points every such
``<script>`` and ``<link>`` at a copy of the same library placed under ``html_dir/vendor/``
(``integrity`` and ``crossorigin`` dropped: the local files are not byte-identical to the CDN's
minified ones, and a same-origin load needs no CORS), and then checks that no script,
stylesheet or image is still loaded from ``http://`` or ``https://``. Links a user clicks (the
navbar's link to asv on GitHub) stay as they are.

The local copies come from the npm registry at install time: ``scripts/setup.sh`` installs the
packages of :data:`CDN_ASSETS` into :func:`assets_dir` (``npm install --prefix``); nothing is
fetched at run time. They are the versions asv's ``index.html`` names, except stupidtable:
its 1.0.x line was never published to npm, and 1.1.3 (``stupid-table-plugin``) is the oldest
there; it keeps the two calls asv makes (``$table.stupidtable(sortFns)``,
``$th.stupidsort(dir)``). flot 0.8.3's npm package has no minified files, so the plain ones
are served.

The site fetches its JSON (``index.json``, ``graphs/...``) with XMLHttpRequest, which a browser
refuses for a page opened from a ``file://`` URL: serve ``html_dir`` over HTTP, e.g.
``python -m http.server -d asv/html`` or ``asv preview``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["CDN_ASSETS", "Asset", "PublishError", "MissingAssetError", "assets_dir", "missing_assets",
           "make_offline", "publish", "remote_loads"]

#: Environment variable naming the folder the npm packages were installed into (``--prefix``).
ASSETS_ENV = "HARNESS_ASV_ASSETS"
#: Folder under ``html_dir`` that receives the local copies.
VENDOR = "vendor"


@dataclass(frozen=True)
class Asset:
    """One CDN file's local stand-in.

    Attributes
    ----------
    npm : str
        The npm package that carries it, ``name@version`` (what ``scripts/setup.sh`` installs).
    file : str
        Its path under ``node_modules/``; copied to the same path under ``html_dir/vendor/``.
    extra : tuple of str
        Folders under ``node_modules/`` the file refers to by relative URL, copied with it
        (bootstrap's CSS loads its glyph fonts from ``../fonts/``).
    """

    npm: str
    file: str
    extra: tuple[str, ...] = ()


#: Every remote ``src``/``href`` of asv's ``index.html`` (asv 0.6) -> the local file that replaces it.
CDN_ASSETS: dict[str, Asset] = {
    "https://code.jquery.com/jquery-3.3.1.min.js":
        Asset("jquery@3.3.1", "jquery/dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js":
        Asset("flot@0.8.3", "flot/jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js":
        Asset("flot@0.8.3", "flot/jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        Asset("flot@0.8.3", "flot/jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        Asset("flot@0.8.3", "flot/jquery.flot.categories.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        Asset("flot-orderbars@1.0.0", "flot-orderbars/js/jquery.flot.orderBars.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        Asset("stupid-table-plugin@1.1.3", "stupid-table-plugin/stupidtable.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js":
        Asset("blueimp-md5@2.19.0", "blueimp-md5/js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        Asset("bootstrap@3.1.1", "bootstrap/dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        Asset("bootstrap@3.1.1", "bootstrap/dist/css/bootstrap.min.css", extra=("bootstrap/dist/fonts",)),
}


class PublishError(RuntimeError):
    """``asv publish`` failed, or its site could not be made to open offline."""


class MissingAssetError(PublishError):
    """A library the site loads has no local copy installed (run ``scripts/setup.sh``)."""


def assets_dir() -> Path:
    """The folder the site's libraries were installed into by ``scripts/setup.sh``.

    Returns
    -------
    Path
        ``$HARNESS_ASV_ASSETS`` when set, else ``<sys.prefix>/share/harness/asv-www`` (the
        virtual environment's); the files lie under its ``node_modules/``.
    """
    override = os.environ.get(ASSETS_ENV)
    return Path(override) if override else Path(sys.prefix) / "share" / "harness" / "asv-www"


def missing_assets(*, assets: Path | None = None) -> list[Asset]:
    """The assets of :data:`CDN_ASSETS` with a file or folder not installed.

    Parameters
    ----------
    assets : Path, optional
        The npm prefix to look in; :func:`assets_dir` by default.

    Returns
    -------
    list of Asset
        In table order, each once; empty when everything is installed.
    """
    modules = (assets if assets is not None else assets_dir()) / "node_modules"
    missing: list[Asset] = []
    for asset in dict.fromkeys(CDN_ASSETS.values()):
        if not (modules / asset.file).is_file() or not all((modules / d).is_dir() for d in asset.extra):
            missing.append(asset)
    return missing


# One <script ...> or <link ...> start tag; attribute values may be quoted either way or bare.
_TAG = re.compile(r"<(?:script|link)\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.IGNORECASE)
_URL_ATTR = re.compile(r"(\s(?:src|href)\s*=\s*)(\"[^\"]*\"|'[^']*'|[^\s>]+)", re.IGNORECASE)
_DROP_ATTR = re.compile(r"\s+(?:integrity|crossorigin)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?(?=[\s/>])",
                        re.IGNORECASE)
_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""(?:url\(\s*|@import\s+)["']?((?:https?:)?//[^"')\s;]+)""", re.IGNORECASE)


class _Loads(HTMLParser):
    """The URLs an HTML page loads as it opens: scripts, ``<link>`` targets, images, frames."""

    _ATTRS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src",
              "embed": "src", "audio": "src", "video": "src"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = self._ATTRS.get(tag)
        if name is None:
            return
        values = dict(attrs)
        if tag == "link" and (values.get("rel") or "").strip().lower() in ("alternate", "canonical"):
            return  # a feed or a permalink: named, not loaded
        if values.get(name):
            self.urls.append(values[name])


def remote_loads(html_dir: Path) -> list[str]:
    """Every resource the site would fetch from the network, as ``"file: url"``.

    Parameters
    ----------
    html_dir : Path
        The published site.

    Returns
    -------
    list of str
        ``http://``, ``https://`` and protocol-relative (``//host``) URLs of scripts, ``<link>``
        targets (stylesheets, icons; not ``rel=alternate``), images and frames in its HTML
        files, and of ``url(...)``/``@import`` in its CSS files; anchors (``<a href>``) are
        not loads and are not listed. Empty when the site opens offline.
    """
    found: list[str] = []
    for page in sorted(html_dir.rglob("*.html")):
        parser = _Loads()
        parser.feed(page.read_text(encoding="utf-8"))
        parser.close()
        found += [f"{page.relative_to(html_dir)}: {url}" for url in parser.urls if _REMOTE.match(url)]
    for sheet in sorted(html_dir.rglob("*.css")):
        text = sheet.read_text(encoding="utf-8", errors="replace")
        found += [f"{sheet.relative_to(html_dir)}: {url}" for url in _CSS_URL.findall(text)]
    return found


def _vendor(asset: Asset, *, modules: Path, vendor: Path) -> Path:
    """Copy ``asset`` (and its extra folders) from ``modules`` into ``vendor``; its new path."""
    source = modules / asset.file
    if not source.is_file():
        raise MissingAssetError(f"{asset.npm}: {source} is not installed (asv's site loads it from a CDN); "
                                f"run scripts/setup.sh, which installs it with npm, or set {ASSETS_ENV}")
    target = vendor / asset.file
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    for folder in asset.extra:
        if not (modules / folder).is_dir():
            raise MissingAssetError(f"{asset.npm}: {modules / folder} is not installed (needed by "
                                    f"{asset.file}); run scripts/setup.sh, or set {ASSETS_ENV}")
        shutil.copytree(modules / folder, vendor / folder, dirs_exist_ok=True)
    return target


def make_offline(html_dir: Path, *, assets: Path | None = None) -> dict[str, str]:
    """Point the site's CDN scripts and stylesheets at local copies under ``html_dir/vendor/``.

    Parameters
    ----------
    html_dir : Path
        A site written by ``asv publish``; its HTML files are rewritten in place.
    assets : Path, optional
        The npm prefix holding the libraries (``node_modules/`` inside); :func:`assets_dir`
        by default.

    Returns
    -------
    dict of str to str
        Each CDN URL found -> the path, relative to ``html_dir``, of the copy that replaced it.

    Raises
    ------
    MissingAssetError
        A library the site loads is not installed under ``assets``.
    PublishError
        A page loads a remote URL that :data:`CDN_ASSETS` does not know (a newer asv), or some
        remote load is left after the rewrite.
    """
    html_dir = Path(html_dir)
    modules = (assets if assets is not None else assets_dir()) / "node_modules"
    vendor = html_dir / VENDOR
    replaced: dict[str, str] = {}

    for page in sorted(html_dir.rglob("*.html")):
        if vendor in page.parents:
            continue
        text = page.read_text(encoding="utf-8")

        def local(tag: re.Match[str], page: Path = page) -> str:
            found = _URL_ATTR.search(tag.group(0))
            if found is None:
                return tag.group(0)
            url = found.group(2).strip("\"'")
            if not _REMOTE.match(url):
                return tag.group(0)
            asset = CDN_ASSETS.get(url)
            if asset is None:
                raise PublishError(f"{page}: loads {url}, which has no local copy in "
                                   f"harness.regress.publish.CDN_ASSETS (a newer asv?)")
            copy = _vendor(asset, modules=modules, vendor=vendor)
            replaced[url] = copy.relative_to(html_dir).as_posix()
            href = Path(os.path.relpath(copy, page.parent)).as_posix()
            start, end = found.span(2)
            rewritten = tag.group(0)[:start] + f'"{href}"' + tag.group(0)[end:]
            return _DROP_ATTR.sub("", rewritten)

        new = _TAG.sub(local, text)
        if new != text:
            page.write_text(new, encoding="utf-8")

    left = remote_loads(html_dir)
    if left:
        raise PublishError(f"{html_dir} still loads from the network: " + "; ".join(left))
    return replaced


def publish(config: Path, *, assets: Path | None = None, timeout: float | None = 600.0) -> Path:
    """``asv publish --config CONFIG``, then :func:`make_offline` on its ``html_dir``.

    Parameters
    ----------
    config : Path
        The ``asv.conf.json``; asv runs in its folder, so its relative paths (``results_dir``,
        ``html_dir``) are relative to it.
    assets : Path, optional
        The npm prefix holding the site's libraries; :func:`assets_dir` by default.
    timeout : float or None, optional
        Seconds ``asv publish`` may take.

    Returns
    -------
    Path
        The site's folder (``html_dir``), which opens with no network once served over HTTP
        (``python -m http.server -d HTML_DIR``, or ``asv preview``; not from ``file://``: the
        page loads its JSON with XMLHttpRequest).

    Raises
    ------
    PublishError
        ``asv publish`` failed (its output is in the message), or see :func:`make_offline`.
    """
    from asv.config import Config

    config = Path(config).resolve()
    command = [sys.executable, "-m", "asv", "publish", "--config", str(config)]
    try:
        done = subprocess.run(command, cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise PublishError(f"asv publish --config {config} took over {timeout} s:\n{error.output or ''}") from None
    if done.returncode != 0:
        raise PublishError(f"asv publish --config {config} failed (exit {done.returncode}):\n{done.stdout}")
    html_dir = config.parent / Config.load(str(config)).html_dir
    if not (html_dir / "index.html").is_file():
        raise PublishError(f"asv publish --config {config} wrote no {html_dir / 'index.html'}:\n{done.stdout}")
    make_offline(html_dir, assets=assets)
    return html_dir


def _main(argv: list[str] | None = None) -> int:
    """``python -m harness.regress.publish --missing``: the npm packages to install, one a line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.regress.publish", description=__doc__.splitlines()[0])
    parser.add_argument("--missing", action="store_true",
                        help="print the npm packages (name@version) whose files are not installed under "
                             f"the assets folder (${ASSETS_ENV}, else <venv>/share/harness/asv-www), one a line")
    parser.add_argument("--all", action="store_true", help="print every npm package the site needs")
    args = parser.parse_args(argv)
    if not (args.missing or args.all):
        parser.error("give --missing or --all")
    wanted = dict.fromkeys(CDN_ASSETS.values()) if args.all else missing_assets()
    for npm in dict.fromkeys(asset.npm for asset in wanted):
        print(npm)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
