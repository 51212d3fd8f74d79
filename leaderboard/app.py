"""The harness leaderboard (Streamlit): ``streamlit run leaderboard/app.py -- --store DIR``.

Pages: Overview (ranking by performance-profile score), Task, Method, Runs, ECDF, Tuning (tuned
against default results and the trials' sensitivity plot), and
Regressions (asv's recorded results over commits: ``-- --asv-results DIR``). The store is read
only; the sidebar's filters (hardware profile, framework, task family) apply to every page of
the store.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import lbkit
import streamlit as st

st.set_page_config(page_title="harness leaderboard", layout="wide")

PAGES = [
    st.Page(str(HERE / "views" / "overview.py"), title="Overview", default=True),
    st.Page(str(HERE / "views" / "task.py"), title="Task", url_path="task"),
    st.Page(str(HERE / "views" / "method.py"), title="Method", url_path="method"),
    st.Page(str(HERE / "views" / "runs.py"), title="Runs", url_path="runs"),
    st.Page(str(HERE / "views" / "ecdf.py"), title="ECDF", url_path="ecdf"),
    st.Page(str(HERE / "views" / "tuning.py"), title="Tuning", url_path="tuning"),
    st.Page(str(HERE / "views" / "regressions.py"), title="Regressions", url_path="regressions"),
]

started = time.perf_counter()
page = st.navigation(PAGES)
st.sidebar.caption("Filters (none picked: all)")
lbkit.sidebar_filters()
page.run()
# The page's last element: how long it took (and, for a browser test, that the script has finished).
st.sidebar.caption(f"{lbkit.DRAWN} {time.perf_counter() - started:.1f} s")
