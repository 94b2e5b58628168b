#!/usr/bin/env python3
"""scikit-learn reference for graft's metrics and report (tests/test_transfer_metrics.c).

  metrics_reference.py gen DIR
      Writes test cases into DIR: random class probabilities, labels and groups (fixed seeds)
      plus edge cases (a class never predicted, a class absent from y, two classes, all
      correct, ties, confidences exactly on bin edges), each in DIR/<case>/ as .npy inputs and
      the expected results: scikit-learn 1.2's accuracy_score, top_k_accuracy_score,
      precision_recall_fscore_support(zero_division=0), f1_score(average="macro"),
      confusion_matrix, and an expected calibration error (Guo et al. 2017) by a plain numpy
      implementation written here. DIR/cases.txt lists "name nclass nbins ngroup". Names for
      the report (with characters HTML must escape) go to DIR/*_names.txt, one per line.

  metrics_reference.py check DIR CASE HTML SECONDS PEAK_MB
      Checks the report graft wrote for CASE: it parses (html.parser), has no script, no
      external resource or URL, each <svg> block is well-formed XML (xml.etree), data text is
      escaped, and the numbers shown are the reference's, formatted as documented in
      src/transfer/transfer.h. Exit status 0 when all checks pass; failures are printed.
"""
import os
import re
import sys
import warnings
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, top_k_accuracy_score)

warnings.filterwarnings("ignore")  # k >= n_classes and zero_division notices

CLASS_NAMES = ['<b>&"x"', "cat", "dog & co", "l'oiseau", "a > b", "zebra",
               "very long class name number six", "ünïcode ✓", "8", "nine"]
GROUP_NAMES = ["north & south", "<east>", "west", "centre \"c\""]
CURVE_NAMES = ["train loss", "val <accuracy>"]
TITLE = 'graft <report> & "test"'
RECIPE = 'linear probe\nC = 0.5 & lr < 1e-3\nfeatures: "layer4" \'pooled\''
NBINS_DEFAULT = 15


# ---------------------------------------------------------------- reference computations

def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def ece_numpy(conf, correct, nbins):
    """Equal-width bins (i/B, (i+1)/B]; confidence 0 belongs to the first bin."""
    edges = np.arange(nbins + 1, dtype=np.float64) / nbins
    acc = np.zeros(nbins)
    mconf = np.zeros(nbins)
    count = np.zeros(nbins)
    ece = 0.0
    for b in range(nbins):
        lo, hi = edges[b], edges[b + 1]
        inb = (conf <= hi) & ((conf > lo) | ((b == 0) & (conf <= lo)))
        if b == nbins - 1:
            inb |= conf > 1
        count[b] = inb.sum()
        if count[b]:
            acc[b] = correct[inb].mean()
            mconf[b] = conf[inb].mean()
            ece += abs(acc[b] - mconf[b]) * count[b] / len(conf)
    return ece, acc, mconf, count


def topk_reference(p, y, k):
    """scikit-learn when no row has tied scores; otherwise graft's documented rule (among
    equal scores the lower class id ranks first), as a stable argsort of -p."""
    nclass = p.shape[1]
    ties = any(len(np.unique(row)) < nclass for row in p)
    if not ties:
        if nclass == 2:  # binary: scikit-learn wants the positive class's score
            return top_k_accuracy_score(y, p[:, 1], k=k, labels=[0, 1])
        return top_k_accuracy_score(y, p, k=k, labels=np.arange(nclass))
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return float(np.mean((order == y[:, None]).any(1)))


def reference(p, y, group, ngroup, nbins):
    nclass = p.shape[1]
    pred = np.argmax(p, 1)  # ties: the first maximum
    labels = np.arange(nclass)
    k = min(5, nclass)
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    conf = p.max(1).astype(np.float64)
    ece, bacc, bconf, bcount = ece_numpy(conf, (pred == y).astype(np.float64), nbins)
    r = dict(acc=accuracy_score(y, pred), topk=topk_reference(p, y, k), k=k,
             macro=f1_score(y, pred, average="macro", zero_division=0),
             present=len(np.union1d(y, pred)), prec=prec, rec=rec, f1=f1, sup=sup,
             cm=confusion_matrix(y, pred, labels=labels), ece=ece, bacc=bacc, bconf=bconf,
             bcount=bcount, worst=-1, gacc=np.zeros(max(ngroup, 0)), gn=np.zeros(max(ngroup, 0)))
    if group is not None:
        for g in range(ngroup):
            sel = group == g
            r["gn"][g] = sel.sum()
            if sel.any():
                r["gacc"][g] = accuracy_score(y[sel], pred[sel])
        nonempty = np.flatnonzero(r["gn"] > 0)
        r["worst"] = int(nonempty[np.argmin(r["gacc"][nonempty])])  # argmin: first of equals
    return r


def load_case(d, case):
    cd = os.path.join(d, case)
    p = np.load(os.path.join(cd, "prob.npy"))
    y = np.load(os.path.join(cd, "y.npy"))
    gpath = os.path.join(cd, "group.npy")
    group = np.load(gpath) if os.path.exists(gpath) else None
    with open(os.path.join(d, "cases.txt")) as f:
        for line in f:
            name, _, nbins, ngroup = line.split()
            if name == case:
                return p, y, group, int(ngroup), int(nbins)
    raise SystemExit(f"no case {case}")


# ---------------------------------------------------------------- test cases

def make_cases(rng):
    cases = []

    def probs(n, nclass, scale, y=None, boost=2.0):
        z = rng.normal(size=(n, nclass)) * scale
        if y is not None:
            z[np.arange(n), y] += boost  # the right class is likelier: accuracy well above chance
        return softmax(z).astype(np.float32)

    n, K = 500, 10
    y = rng.integers(0, K, n)
    cases.append(("random10", probs(n, K, 1.5, y), y, rng.integers(0, 4, n), 4, 0))

    # class 5 never predicted, class 4 absent from y, class 3 in neither; group 4 empty
    n, K = 240, 6
    y = rng.choice([0, 1, 2, 5], n)
    p = probs(n, K, 1.0, y, 1.0)
    p[:, 5] *= 1e-3
    p[:, 3] *= 1e-3
    p[rng.random(n) < 0.15, 4] = 0.99
    cases.append(("absent", p, y, rng.integers(0, 4, n), 5, 10))

    n, K = 300, 2
    y = rng.integers(0, K, n)
    cases.append(("binary", probs(n, K, 1.0, y, 0.8), y, rng.integers(0, 3, n), 3, 0))

    # all correct; every group at accuracy 1 (worst: the lowest index)
    n, K = 120, 4
    p = probs(n, K, 2.0)
    cases.append(("allcorrect", p, np.argmax(p, 1), rng.integers(0, 3, n), 3, 0))

    # ties: argmax and top-k take the lowest class id among equal scores
    n, K = 200, 7
    p = rng.integers(0, 4, size=(n, K)).astype(np.float32) / 4
    p[0] = 0  # confidence 0: the first bin
    cases.append(("ties", p, rng.integers(0, K, n), None, 0, 0))

    # confidences exactly on the edges of 20 bins (exact in float32: 0, 0.25, 0.5, 0.75, 1),
    # just off them (0.05, 0.35, 0.6 are not exact in float32), and random ones
    n, K, B = 400, 8, 20
    edges = np.array([0.0, 0.05, 0.25, 0.35, 0.5, 0.6, 0.75, 1.0], dtype=np.float32)
    top = edges[rng.integers(0, len(edges), n)]
    top[: n // 4] = rng.random(n // 4).astype(np.float32)
    p = (rng.random((n, K)).astype(np.float32) * top[:, None] * 0.9).astype(np.float32)
    cls = rng.integers(0, K, n)
    p[np.arange(n), cls] = top
    p[top == 0] = 0
    y = np.where(rng.random(n) < 0.6, cls, rng.integers(0, K, n))
    y[top == 0] = 0
    cases.append(("edges", p, y, rng.integers(0, 2, n), 2, B))

    n, K = 3000, 60
    y = rng.integers(0, K, n)
    cases.append(("many", probs(n, K, 1.2, y, 1.5), y, None, 0, 0))
    return cases


def gen(d):
    rng = np.random.default_rng(20240611)
    lines = []
    for name, p, y, group, ngroup, nbins in make_cases(rng):
        cd = os.path.join(d, name)
        os.makedirs(cd, exist_ok=True)
        y = y.astype(np.int32)
        np.save(os.path.join(cd, "prob.npy"), p.astype(np.float32))
        np.save(os.path.join(cd, "y.npy"), y)
        if group is not None:
            group = group.astype(np.int32)
            np.save(os.path.join(cd, "group.npy"), group)
        B = nbins or NBINS_DEFAULT
        r = reference(p, y, group, ngroup, B)
        np.save(os.path.join(cd, "scal.npy"),
                np.array([r["acc"], r["topk"], r["macro"], r["ece"], r["worst"], r["present"], r["k"]]))
        np.save(os.path.join(cd, "prf.npy"), np.stack([r["prec"], r["rec"], r["f1"]]).astype(np.float64))
        np.save(os.path.join(cd, "support.npy"), r["sup"].astype(np.int64))
        np.save(os.path.join(cd, "cm.npy"), r["cm"].astype(np.int64))
        np.save(os.path.join(cd, "bins.npy"), np.stack([r["bacc"], r["bconf"], r["bcount"]]))
        if group is not None:
            np.save(os.path.join(cd, "groups.npy"), np.stack([r["gacc"], r["gn"]]))
        lines.append(f"{name} {p.shape[1]} {nbins} {ngroup if group is not None else 0}\n")
    with open(os.path.join(d, "cases.txt"), "w") as f:
        f.writelines(lines)
    for fname, items in (("title.txt", [TITLE]), ("class_names.txt", CLASS_NAMES), ("group_names.txt", GROUP_NAMES),
                         ("curve_names.txt", CURVE_NAMES)):
        with open(os.path.join(d, fname), "w", encoding="utf-8") as f:
            f.write("".join(s + "\n" for s in items))
    with open(os.path.join(d, "recipe.txt"), "w") as f:
        f.write(RECIPE)


# ---------------------------------------------------------------- report check

class Page(HTMLParser):
    """Collects tags, attributes, table rows (cell texts) by table id and element texts by id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.tables, self.text_by_id = [], [], {}, {}
        self.table, self.row, self.cell, self.row_class = None, None, None, None
        self.id_stack = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id", "")
            self.tables[self.table] = []
        elif tag == "tr":
            self.row, self.row_class = [], a.get("class")
        elif tag in ("td", "th"):
            self.cell = ""
        if "id" in a and tag != "table":
            self.id_stack.append((tag, a["id"]))
            self.text_by_id[a["id"]] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.table is not None:
            self.tables[self.table].append((self.row, self.row_class))
            self.row = None
        elif tag == "table":
            self.table = None
        if self.id_stack and self.id_stack[-1][0] == tag:
            self.id_stack.pop()

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        for _, i in self.id_stack:
            self.text_by_id[i] += data


def formats(v, fmt):
    """The text of v in fmt, and that of its neighbours when v sits on a rounding boundary (the
    two programs may compute the same ratio one ulp apart)."""
    return {fmt % x for x in (v, v * (1 - 1e-12) - 1e-15, v * (1 + 1e-12) + 1e-15)}


def check(d, case, html_path, seconds, peak):
    fails = []

    def expect(cond, msg):
        if not cond:
            fails.append(msg)

    p, y, group, ngroup, nbins = load_case(d, case)
    B = nbins or NBINS_DEFAULT
    r = reference(p, y, group, ngroup, B)
    K = p.shape[1]
    names = [l.rstrip("\n") for l in open(os.path.join(d, "class_names.txt"), encoding="utf-8")]
    gnames = [l.rstrip("\n") for l in open(os.path.join(d, "group_names.txt"), encoding="utf-8")]
    cnames = [l.rstrip("\n") for l in open(os.path.join(d, "curve_names.txt"), encoding="utf-8")]
    names = [names[k] if k < len(names) else f"c{k}" for k in range(K)]
    recipe = open(os.path.join(d, "recipe.txt")).read()
    raw = open(html_path, encoding="utf-8").read()

    # parses; nothing active or external
    page = Page()
    page.feed(raw)
    page.close()
    for bad in ("script", "link", "img", "iframe", "object", "embed", "base", "image", "use", "a",
                "foreignobject"):
        expect(bad not in page.tags, f"the page has a <{bad}> element")
    for tag, k, v in page.attrs:
        expect(not k.startswith("on"), f"<{tag}> has an event attribute {k}")
        expect("http" not in v.lower() and "//" not in v and "url(" not in v.lower(),
               f"<{tag} {k}=\"{v}\"> holds a URL")
        expect(k not in ("src", "href", "xlink:href"), f"<{tag}> has {k}")
    expect(not re.search(r"<\s*script", raw, re.I), "the text '<script' occurs")
    expect(not re.search(r"https?:|//[a-z]|@import|url\(", raw.split("<section id=\"extra\">")[0], re.I),
           "a URL, @import or url() occurs outside the trusted section")

    # escaping of data text
    expect('&lt;b&gt;&amp;&quot;x&quot;' in raw, "the class name <b>&\"x\" is not escaped as expected")
    expect('<b>&"x"' not in raw, "the class name <b>&\"x\" occurs unescaped")
    if group is not None:
        expect("<east>" not in raw and "&lt;east&gt;" in raw, "the group name <east> is not escaped")
    expect(page.text_by_id.get("recipe") == recipe, "the recipe is not shown verbatim")
    expect(page.text_by_id.get("title") == TITLE and "<report>" not in raw, "the title is not escaped")

    # svg blocks are well-formed XML
    svgs = re.findall(r"<svg\b.*?</svg>", raw, re.S)
    roots = {}
    for s in svgs:
        try:
            e = ET.fromstring(s)
            roots[e.get("id")] = e
        except ET.ParseError as err:
            fails.append(f"an <svg> block is not well-formed XML: {err}")
    want_svgs = {"curves", "reliability"} | ({"confusion"} if K <= 50 else set())
    expect(set(roots) == want_svgs, f"svg blocks {sorted(roots)}, expected {sorted(want_svgs)}")

    # headline numbers, formatted as documented
    head = {row[0]: row[1] for row, _ in page.tables.get("headline", []) if len(row) == 2}
    want = {"accuracy": formats(100 * r["acc"], "%.2f%%"),
            f"top-{r['k']} accuracy": formats(100 * r["topk"], "%.2f%%"),
            "macro F1": formats(r["macro"], "%.3f"),
            f"ECE ({B} bins)": formats(r["ece"], "%.4f"),
            "time": {"%.1f s" % seconds}, "peak memory": {"%.1f MB" % peak}}
    for k, v in want.items():
        expect(head.get(k) in v, f"headline {k}: {head.get(k)!r}, expected one of {sorted(v)}")

    # per-class table
    rows = [row for row, _ in page.tables.get("per-class", [])][1:]
    expect(len(rows) == K, f"per-class table: {len(rows)} rows, expected {K}")
    for k, row in enumerate(rows[:K]):
        ok = (row[0] == names[k] and row[1] in formats(r["prec"][k], "%.3f")
              and row[2] in formats(r["rec"][k], "%.3f") and row[3] in formats(r["f1"][k], "%.3f")
              and row[4] == str(r["sup"][k]))
        expect(ok, f"per-class row {k}: {row}, expected {names[k]!r} {r['prec'][k]:.3f} "
                   f"{r['rec'][k]:.3f} {r['f1'][k]:.3f} {r['sup'][k]}")

    # per-group table, the worst group highlighted and named
    if group is not None:
        grows = page.tables.get("per-group", [])[1:]
        expect(len(grows) == ngroup, f"per-group table: {len(grows)} rows, expected {ngroup}")
        for g, (row, cls) in enumerate(grows[:ngroup]):
            acc = formats(100 * r["gacc"][g], "%.2f%%") if r["gn"][g] else {"n/a"}
            expect(row[0] == gnames[g] and row[1] in acc and row[2] == str(int(r["gn"][g])),
                   f"per-group row {g}: {row}")
            expect((cls == "worst") == (g == r["worst"]), f"per-group row {g}: class {cls}")
        w = page.text_by_id.get("worst-group", "")
        expect(gnames[r["worst"]] in w, f"the worst group is not named: {w!r}")

    # confusion matrix: a heat map with every class name and count, or the top confusions
    if K <= 50 and "confusion" in roots:
        texts = [t.text for t in roots["confusion"].iter("text")]
        for k in range(K):
            shown = names[k] if len(names[k]) <= 24 else names[k][:24] + "\u2026"  # labels: 24 chars
            expect(texts.count(shown) == 2, f"heat map: class name {shown!r} not on both axes")
        titles = [t.text for t in roots["confusion"].iter("title")]
        expect(len(titles) == K * K, f"heat map: {len(titles)} cells, expected {K * K}")
        for t in range(K):
            for q in range(K):
                s = titles[t * K + q] if t * K + q < len(titles) else ""
                expect(s.startswith(f"true {names[t]}, predicted {names[q]}: {r['cm'][t, q]} "),
                       f"heat map cell ({t}, {q}): {s!r}, count {r['cm'][t, q]}")
    elif K > 50:
        off = [(-r["cm"][t, q], t, q) for t in range(K) for q in range(K) if t != q and r["cm"][t, q] > 0]
        off.sort()
        rows = [row for row, _ in page.tables.get("top-confusions", [])][1:]
        expect(len(rows) == min(20, len(off)), f"top confusions: {len(rows)} rows")
        for row, (c, t, q) in zip(rows, off):
            expect(row[:3] == [names[t], names[q], str(-c)], f"top confusion {row}, expected {names[t]} "
                                                                f"{names[q]} {-c}")

    # reliability diagram: one bar per non-empty bin, with its count
    if "reliability" in roots:
        counts = [t.text for t in roots["reliability"].iter("text") if t.get("class") == "count"]
        want_counts = [str(int(c)) for c in r["bcount"] if c > 0]
        expect(counts == want_counts, f"reliability counts {counts}, expected {want_counts}")
        brows = [row for row, _ in page.tables.get("bins", [])][1:]
        expect([row[1] for row in brows] == [str(int(c)) for c in r["bcount"]], "bins table counts")

    # learning curves: the legend names them
    if "curves" in roots:
        legend = [t.text for t in roots["curves"].iter("text") if t.get("class") == "legend"]
        expect(legend == cnames, f"legend {legend}, expected {cnames}")
        expect(len(list(roots["curves"].iter("polyline"))) >= 1, "no curve drawn")

    expect(page.text_by_id.get("extra-p") == "extra & trusted", "the extra section is missing")
    for f in fails:
        print("FAIL:", f)
    print(f"report {case}: {len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif len(sys.argv) == 7 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6])))
    else:
        sys.exit(__doc__)
