"""``feedstream chaos``: one fault per run under a mixed write load through the HTTP API, then a
verification of every view against the topics read from offset 0 (issue #13).

:mod:`.load` is the good client (Idempotency-Keys, retries with backoff) and the write→visible
probe; :mod:`.faults` the kills, stalls and Toxiproxy network faults; :mod:`.verify` the oracle;
:mod:`.run` one run per fault on one platform; :mod:`.report` the table and the plot.
"""
