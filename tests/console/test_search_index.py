"""The catalog's word index narrows a search without changing its answer: on the bundled
captures (Telnet sessions, SSH shells, an SFTP tour with file names), every query an auditor
might type -- a word, a piece of a word, a piece across words, odd case, punctuation alone,
non-ASCII -- gets exactly the hits of reading every row, and the index did narrow most of them.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from console_harness import ROOT

PCAPS = ROOT / "pcaps"
CAPTURES = [*sorted((PCAPS / "telnet").glob("*.pcap")),
            PCAPS / "ssh" / "a01_shell_curve25519_aes128ctr.pcap",
            PCAPS / "ssh" / "b03_sftp_tour_curve25519_aes256gcm.pcap"]
KEYS = [PCAPS / "ssh" / "a01_shell_curve25519_aes128ctr.keylog",
        PCAPS / "ssh" / "b03_sftp_tour_curve25519_aes256gcm.escrow.jsonl"]


def cli_import(home: Path) -> None:
    env = dict(os.environ, SESSIONTAP_HOME=str(home))
    args = [sys.executable, "-m", "appliance.cli", "import", "-q", *map(str, CAPTURES)]
    for k in KEYS:
        args += ["--keys", str(k)]
    p = subprocess.run(args, capture_output=True, env=env, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr.decode()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from appliance.home import Home

    path = tmp_path_factory.mktemp("search") / "home"
    cli_import(path)
    cli_import(path)  # again: every session is rewritten, and its old words with it
    with Home(path=path, actor="test").catalog() as cat:
        yield cat


def texts(cat) -> list[str]:
    rows = cat.con.execute("""
        SELECT text FROM commands UNION ALL SELECT output FROM commands WHERE output IS NOT NULL
        UNION ALL SELECT text FROM events WHERE kind NOT IN ('command', 'tag', 'session-start')
        UNION ALL SELECT path FROM files""").fetchall()
    return [r[0] for r in rows if r[0]]


def queries(cat) -> list[str]:
    rng = random.Random(7)
    corpus = texts(cat)
    assert len(corpus) > 50 and cat.con.execute("SELECT count(*) FROM files").fetchone()[0] > 0
    out = ["fwupdate", "FWUPDATE", "/", "-", " ", "é", "ü/", "no such text at all", "..", "a", "0"]
    for _ in range(300):
        t = rng.choice(corpus)
        i = rng.randrange(len(t))
        out.append(t[i:i + rng.randint(1, 24)])          # any piece, across words or inside one
    for _ in range(100):
        words = rng.choice(corpus).split()
        if words:
            w = rng.choice(words)
            out += [w, w.upper(), f" {w} ", w[1:-1] or w]  # whole words, odd case, inner pieces
    return [q for q in dict.fromkeys(out) if q.strip(" ") or q == " "]


def reference(cat, q: str) -> list[tuple]:
    """The hits by definition: every searched row whose lower-cased text contains ``q``
    lower-cased (the search as it was before the index), read in full."""
    from storage.catalog import iso

    rows = cat.con.execute("""
        SELECT session_id, ts, 'command', text FROM commands WHERE contains(lower(text), $q)
        UNION ALL SELECT session_id, coalesce(output_ts, ts), 'output', text FROM commands
            WHERE contains(lower(output), $q) AND NOT contains(lower(text), $q)
        UNION ALL SELECT session_id, ts, kind, text FROM events
            WHERE kind NOT IN ('command', 'tag', 'session-start') AND contains(lower(text), $q)
        UNION ALL SELECT session_id, ts, 'file', path FROM files WHERE contains(lower(path), $q)""",
                           {"q": q.lower()}).fetchall()
    return sorted((sid, iso(ts), kind, text) for sid, ts, kind, text in rows)


def test_indexed_search_gives_the_hits_of_a_full_read(catalog):
    narrowed = skipped_columns = 0
    qs = queries(catalog)
    for q in qs:
        with_index = catalog.search(q, limit=1000)
        full_read = catalog.search(q, limit=1000, use_index=False)
        assert with_index == full_read, q
        assert sorted((h["id"], h["ts"], h["kind"], h["text"]) for h in with_index) == reference(catalog, q), q
        where = catalog.search_candidates(q.lower())
        if where is not None:
            narrowed += 1
            skipped_columns += 4 - len(where)
    # and the index is really in use: most queries are narrowed, columns are left unread
    assert narrowed > 0.8 * len(qs) and skipped_columns > len(qs), (narrowed, skipped_columns, len(qs))


def test_a_word_that_is_nowhere_reads_nothing(catalog):
    assert catalog.search_candidates("qqqzzzxxx") == {}
    assert catalog.search("qqqzzzxxx") == []


def test_the_index_rebuilt_from_the_rows_is_the_index_kept_by_the_writer(catalog):
    kept = catalog.con.execute("SELECT term, src, session_id FROM search_terms ORDER BY ALL").fetchall()
    catalog.rebuild_search_index()
    assert catalog.con.execute("SELECT term, src, session_id FROM search_terms ORDER BY ALL").fetchall() == kept


def test_regular_expressions_still_read_every_row(catalog):
    assert catalog.search("fw.pdate", regex=True) == catalog.search("fw.pdate", regex=True, use_index=False)


def test_the_index_sorted_again_inside_a_write_keeps_every_row(catalog):
    rows = "SELECT term, src, session_id FROM search_terms ORDER BY ALL"
    kept = catalog.con.execute(rows).fetchall()
    catalog.con.execute("BEGIN")  # as in write_sessions: words added, then the index sorted again
    catalog.con.execute("INSERT INTO search_terms VALUES ('zzzz-added', 1, 'x')")
    catalog._resort_search_index()
    catalog.con.execute("DELETE FROM search_terms WHERE term = 'zzzz-added'")
    catalog._resort_search_index()
    catalog.con.execute("COMMIT")
    assert catalog.con.execute(rows).fetchall() == kept
    assert catalog.con.execute("SELECT sorted_rows FROM search_index").fetchall() == [(len(kept),)]
    assert catalog.search("fwupdate") == catalog.search("fwupdate", use_index=False)
