"""Exports of an explain store to other tools' formats: MRC volumes and STAR/CSV particle tables."""
