"""Context descriptions (EmoCommonSense, issue #13): describers that write how the person in an
image seems to feel (``lantern describe``; :mod:`lantern.describe.describers`)."""
