"""swerl-filter-length: a reward filter that caps how many tokens a trajectory may sample.

An example of a third-party swerl plugin, kept outside swerl's workspace: its entry point is
`length` in the group `swerl` (see plugin.py).
"""
