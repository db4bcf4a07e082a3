"""Early warning of brewing disputes (矛盾纠纷预警) as pure functions: a keyword library of
categories, text folded so that variants of a word meet, the matching automaton, and the
rule that raises a warning to level 2.

No web framework and no database here: the store and the edges pass in texts, libraries and
the recent hits of a grid, and write what these functions decide.
"""
