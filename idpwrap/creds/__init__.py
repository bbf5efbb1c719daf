"""Where registry credentials come from, in order, and the private auth file that hands them to
the tools.
"""
