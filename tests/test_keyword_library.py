"""The keyword library on the command line and in the database: `gridwatch keywords import`
replaces the active library in one transaction, or names every bad row and imports nothing;
`gridwatch keywords list` shows the library in use (the starter until one is imported)."""

from __future__ import annotations

import csv
import io

import psycopg
import pytest

from gridwatch.cli import main
from gridwatch.disputes.starter import starter_keywords
from gridwatch.imports.keywords import read_keywords_csv
from gridwatch.store.keywords import LibraryMatchers, active_library


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def library_rows(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        [(libraries, entries)] = conn.execute(
            "SELECT (SELECT count(*) FROM keyword_libraries), "
            "(SELECT count(*) FROM keyword_entries)"
        ).fetchall()
    return libraries, entries


GOOD = "category,keyword,weight\n邻里纠纷,邻居吵架,1\n邻里纠纷,扰民,0.5\n劳资纠纷,拖欠工资,\n"


def test_starter_in_use_until_a_library_is_imported(capsys, tmp_path, database_url):
    code, out, _ = run(capsys, "keywords", "list", "--database-url", database_url)
    assert code == 0
    assert "the starter library shipped with gridwatch" in out
    assert f"{len(starter_keywords())} keywords" in out

    path = tmp_path / "library.csv"
    path.write_text(GOOD, encoding="utf-8")
    code, out, _ = run(capsys, "keywords", "import", str(path), "--by", "张三",
                       "--database-url", database_url)  # fmt: skip
    assert code == 0, out
    assert "library.csv: 3 keywords in 2 categories imported as library version 1" in out

    code, out, _ = run(capsys, "keywords", "list", "--database-url", database_url)
    assert "version 1, library.csv" in out and "by 张三" in out
    assert "  邻里纠纷  2\n  劳资纠纷  1\n3 keywords" in out


def test_list_csv_imports_again_as_the_next_version(capsys, tmp_path, database_url):
    code, out, _ = run(capsys, "keywords", "list", "--csv", "--database-url", database_url)
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["category", "keyword", "weight"] and len(rows) == len(starter_keywords()) + 1
    path = tmp_path / "edited.csv"
    path.write_text(out + "债务经济,套路贷款,2\n", encoding="utf-8")
    code, out, _ = run(capsys, "keywords", "import", str(path), "--database-url", database_url)
    assert code == 0 and "imported as library version 1" in out
    with psycopg.connect(database_url) as conn:
        library = active_library(conn)
    assert library.keywords[: len(starter_keywords())] == starter_keywords()
    assert library.keywords[-1].keyword == "套路贷款" and library.keywords[-1].weight == 2.0


def test_gbk_file_with_chinese_header_and_no_weight_column(capsys, tmp_path, database_url):
    path = tmp_path / "词库.csv"
    path.write_bytes("类别,关键词\r\n婚姻家庭,闹离婚\r\n医疗纠纷,醫療糾紛\r\n".encode("gbk"))
    code, out, _ = run(capsys, "keywords", "import", str(path), "--database-url", database_url)
    assert code == 0, out
    with psycopg.connect(database_url) as conn:
        library = active_library(conn)
    assert [(k.category, k.keyword, k.weight) for k in library.keywords] == [
        ("婚姻家庭", "闹离婚", 1.0),
        ("医疗纠纷", "醫療糾紛", 1.0),
    ]


def test_every_bad_row_is_named_and_nothing_is_imported(capsys, tmp_path, database_url):
    first = tmp_path / "first.csv"
    first.write_text(GOOD, encoding="utf-8")
    assert run(capsys, "keywords", "import", str(first), "--database-url", database_url)[0] == 0
    before = library_rows(database_url)

    path = tmp_path / "bad.csv"
    path.write_text(
        "category,keyword,weight\n"
        "邻里纠纷,邻居吵架,1\n"  # row 2: good
        "邻里纠纷,,1\n"  # row 3: no keyword
        ",打架斗殴,1\n"  # row 4: no category
        "邻里纠纷,鄰居吵架,1\n"  # row 5: row 2 in traditional script
        "劳资纠纷,欠,1\n"  # row 6: one character
        "劳资纠纷,欠薪,heavy\n"  # row 7: weight not a number
        "劳资纠纷,讨薪,0\n"  # row 8: weight not above 0
        "劳资纠纷,讨薪\x07,1\n",  # row 9: a control character
        encoding="utf-8",
    )
    code, out, err = run(capsys, "keywords", "import", str(path), "--database-url", database_url)
    assert code == 1 and out == ""
    for row, column in [(3, "keyword"), (4, "category"), (5, "keyword"), (6, "keyword"),
                        (7, "weight"), (8, "weight"), (9, "keyword")]:  # fmt: skip
        assert f"bad.csv: row {row}, column {column}: " in err, (row, err)
    assert "in row 2" in err  # the duplicate names the row it repeats
    assert "row 2," not in err
    assert library_rows(database_url) == before
    with psycopg.connect(database_url) as conn:
        assert active_library(conn).version == 1


def test_a_category_beyond_the_eight_is_read_with_a_warning(capsys, tmp_path, database_url):
    path = tmp_path / "own.csv"
    path.write_text("category,keyword\n环境污染,偷排污水\n邻里纠纷,邻居吵架\n", encoding="utf-8")
    code, out, _ = run(capsys, "keywords", "import", str(path), "--database-url", database_url)
    assert code == 0
    assert "warning: own.csv: row 2, column category: '环境污染' is none of the eight" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("keyword,weight\n邻居吵架,1\n", "missing column category"),
        ("category,keyword\n", "has a header but no keywords"),
    ],
)
def test_files_without_a_library(capsys, tmp_path, database_url, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content, encoding="utf-8")
    code, _, err = run(capsys, "keywords", "import", str(path), "--database-url", database_url)
    assert code == 1 and message in err
    assert library_rows(database_url) == (0, 0)


def test_the_starter_file_reads_clean_as_an_import(tmp_path):
    from importlib import resources

    starter = resources.files("gridwatch.disputes").joinpath("starter_keywords.csv")
    path = tmp_path / "starter.csv"
    path.write_bytes(starter.read_bytes())
    warnings: list[str] = []
    assert tuple(read_keywords_csv(path, warnings)) == starter_keywords()
    assert warnings == []


def test_the_matcher_follows_the_active_version(capsys, tmp_path, database_url):
    matchers = LibraryMatchers()
    with psycopg.connect(database_url) as conn:
        first = matchers.current(conn)
        assert first.version is None and len(first.matcher) == len(starter_keywords())
        assert matchers.current(conn) is first  # built once per version
        path = tmp_path / "library.csv"
        path.write_text(GOOD, encoding="utf-8")
        assert run(capsys, "keywords", "import", str(path), "--database-url", database_url)[0] == 0
        second = matchers.current(conn)
        assert second.version == 1 and len(second.matcher) == 3
        assert [h.category for h in second.matcher.scan("老板拖欠工资")] == ["劳资纠纷"]
        assert matchers.current(conn) is second
