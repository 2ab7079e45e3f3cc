"""``tinyseg plot``: what the studies drew, from tinyseg's own tables (SPEC §4.9).

``tables`` tells the kinds of table apart and reads them into plain arrays (pure, no
matplotlib); ``figures`` draws them. Only ``figures`` imports matplotlib, and only the plot
command imports ``figures``.
"""
