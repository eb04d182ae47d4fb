"""Tests of sparta.data (a package so that module names cannot clash with other test folders)."""
