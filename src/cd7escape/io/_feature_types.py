"""The 10x feature types cd7escape reads: gene expression counts and antibody-capture (ADT) counts."""

from __future__ import annotations

GEX = "Gene Expression"
ADT = "Antibody Capture"
