"""Reports: figures and the HTML page, built from the store alone (the report never trains)."""

from lineup.report.build import build_report

__all__ = ["build_report"]
