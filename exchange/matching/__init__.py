"""The master patient index: the same person across the hospital systems of both countries.

Pure modules (no I/O): `names` (folding, surnames, nicknames, phonetic key), `features`
(a Patient as match features), `blocking` (candidate keys), `model` (m/u probabilities in
Splink's JSON layout), `score` (Fellegi-Sunter weights, grade, explanation), `train` (u by
sampling, m by EM). With I/O: `models` (tables), `service` (links, review queue, $match),
`tasks`, `api`, `linkage` (offline `puente link`).
"""
