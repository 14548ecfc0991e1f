"""The ground floor: settings, the feed's domain rules, view row types, ids, time and event helpers.

Every other package of the project may import this one; it imports none of them
(``tests/unit/test_layers.py`` enforces the layer order written in the README).
"""
