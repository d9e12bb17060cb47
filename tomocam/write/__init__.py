"""Exports of an explain store to other tools' formats: MRC volumes (particle tables: :mod:`tomocam.particles`)."""
