"""`cotrepro.plots.write_table`: what a table file holds. Its CSV keeps 6 significant digits, so
that the floating-point noise between machines (NLLs differed in the 8th digit) does not change
the committed bytes; counts stay integers."""

from __future__ import annotations

from cotrepro.plots import write_table


def test_csv_floats_keep_six_significant_digits_and_counts_stay_counts(tmp_path):
    rows = [{"traces": "H", "nll": 1.6390231272912321, "n": 101.0},
            {"traces": "S", "nll": 1.6390231750173987, "n": 2000.0}]
    md, csv = write_table(rows, "t", tmp_path)
    assert csv.read_text() == "traces,nll,n\nH,1.63902,101\nS,1.63902,2000\n"
    assert "1.6390" in md.read_text()
