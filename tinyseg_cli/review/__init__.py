"""Pictures for reviewing predictions (``tinyseg overlay``, SPEC §4.9): error overlays, enlarged
crops of the worst objects, image | truth | prediction panels and a static HTML gallery.

``render`` holds the pure numpy steps (error layers, max-pooled downsampling, blending,
outlines, crops), ``legend`` the text strips drawn with Pillow, ``crops`` the choice and
drawing of the worst objects, ``sample`` one sample from files to PNGs, ``gallery`` the page.
"""
