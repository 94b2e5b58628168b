#!/usr/bin/python3
"""report_browser_check.py REPORT.html SUMMARY.json WORKDIR — opens a graft report in headless
Chromium (Debian `chromium`) and checks that it rendered, as a person would see it:

  1. Chromium parses the page (--dump-dom): the learning-curve chart has one polyline per curve
     (train/val loss and accuracy: 4) with one point per epoch of the run, the confusion heat map
     has K x K cells, the reliability diagram one bar per non-empty bin, the per-class table K
     rows -- each count taken from the run's own summary (graft finetune --json), not hard-coded;
  2. a screenshot of the whole page (PNG, read with PIL) shows the plots: the reliability bars'
     colour covers a bar-sized area, every curve colour appears, the heat map's colours appear,
     and the page is not blank;
  3. no network request is made: the page loads with every host name unresolvable and Chromium's
     net log (--log-net-log) shows no request started by the page (the browser's own background
     requests, which have no initiating origin, are not the page's); the HTML holds no URL a
     browser would fetch (src=, href= to anything but an in-page #anchor, url(...), @import).
Exit 0 when every check passes; each failure is printed."""
import json
import os
import re
import subprocess
import sys

from PIL import Image

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]  # report.c's first curve colours
BAR = "#4a7fc1"                                          # report.c's reliability bars

fails = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        fails.append(what)


def chromium(args, work):
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            "--disable-component-update", "--disable-default-apps", "--no-default-browser-check",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={work}/profile"]
    r = subprocess.run(base + args, capture_output=True, text=True, timeout=120)
    return r


def rgb(h):
    return tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))


def main():
    report, summary, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    s = json.load(open(summary))
    m = s["test_metrics"]
    # each curve is drawn as one polyline per run of finite points (the probe's "epoch 0" has no
    # training loss, so the training curves start one epoch later)
    runs = []
    for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
        run = 0
        for v in s["history"][key] + [None]:
            if v is not None:
                run += 1
            elif run:
                runs.append(run)
                run = 0
    K = len(m["classes"])
    bins = sum(1 for b in m["calibration"] if b["count"] > 0)
    url = "file://" + os.path.abspath(report)

    # 3a: nothing in the HTML a browser would fetch
    html = open(report, encoding="utf-8").read()
    fetch = re.findall(r'''(?:src|href)\s*=\s*["']?(?!#)[^"'\s>]+|url\(|@import''', html, re.I)
    check(not fetch, f"the HTML holds no fetchable reference ({fetch[:3]})")
    check("<script" not in html.lower(), "the HTML has no script")

    # 1: the DOM as Chromium parsed it
    r = chromium(["--dump-dom", url], work)
    dom = r.stdout
    check(r.returncode == 0 and "<svg" in dom, f"chromium parsed the page (exit {r.returncode})")

    def svg(id_):
        mm = re.search(r'<svg id="%s".*?</svg>' % id_, dom, re.S)
        return mm.group(0) if mm else ""

    curves = svg("curves")
    lines = re.findall(r'<polyline[^>]*points="([^"]*)"', curves)
    points = [len(p.split()) for p in lines]
    check(sorted(points) == sorted(runs) and len(runs) >= 4,
          f"learning curves: polylines of {points} points, expected {runs} (from the history)")
    cells = len(re.findall(r"<rect[^>]*>\s*<title>true ", svg("confusion")))
    check(cells == K * K, f"confusion heat map: {cells} cells, expected {K}x{K}")
    bars = len(re.findall(r'<rect[^>]*fill="%s"' % BAR, svg("reliability")))
    check(bars == bins, f"reliability diagram: {bars} bars, expected {bins} (non-empty bins)")
    rows = len(re.findall(r"<tr>", re.search(r'<table id="per-class">.*?</table>', dom, re.S).group(0))) - 1
    check(rows == K, f"per-class table: {rows} rows, expected {K}")

    # 2 and 3b: a screenshot with the net log on
    shot, netlog = f"{work}/report.png", f"{work}/net.json"
    for f in (shot, netlog):
        if os.path.exists(f):
            os.remove(f)
    r = chromium([f"--screenshot={shot}", "--window-size=1400,4200", "--hide-scrollbars",
                  f"--log-net-log={netlog}", "--net-log-capture-mode=Everything", url], work)
    check(r.returncode == 0 and os.path.exists(shot), f"screenshot taken (exit {r.returncode})")
    if os.path.exists(shot):
        img = Image.open(shot).convert("RGB")
        counts = {}
        for n, c in img.getcolors(maxcolors=1 << 24):
            counts[c] = n
        check(len(counts) > 50, f"the page is not blank ({len(counts)} colours)")
        bar_px = counts.get(rgb(BAR), 0)
        check(bar_px > 500 * max(bins, 1) // 4, f"reliability bars drawn ({bar_px} pixels of {BAR})")
        for c in PALETTE:
            check(counts.get(rgb(c), 0) > 20, f"curve colour {c} drawn ({counts.get(rgb(c), 0)} pixels)")
        # report.c's heat map runs from white to rgb(8, 81, 156): the diagonal cells are dark blue
        dark = sum(n for (r_, g_, b_), n in counts.items() if r_ < 60 and 60 < g_ < 120 and 120 < b_ < 190)
        check(dark > 400, f"heat map drawn ({dark} dark-blue pixels)")
    urls = []
    if os.path.exists(netlog):  # requests the page made (the browser's own have no origin)
        log = json.load(open(netlog, encoding="utf-8", errors="replace"))
        start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        for e in log.get("events", []):
            p = e.get("params") or {}
            if e.get("type") == start and "url" in p and p.get("initiator") != "not an origin" and \
                    not p["url"].startswith(("file:", "data:")):
                urls.append(p.get("url"))
    check(os.path.exists(netlog), "chromium wrote its net log")
    check(not urls, f"no network request from the page ({sorted(set(urls))[:3]})")
    print(f"report_browser_check: {len(fails)} failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
