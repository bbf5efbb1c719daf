"""Settings: the config file, the environment and the flags, and which of them decides each
setting.
"""
