"""First-party plugins, registered through the `tokenopt.plugins` entry-point group like any other."""
