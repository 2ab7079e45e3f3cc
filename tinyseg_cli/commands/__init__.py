"""One package per subcommand: ``cli.py`` declares its options and prints; the other modules
are its steps. A command imports no other command (``tune_oii`` excepted: it trains and
predicts through ``train`` and ``infer``)."""
