from adabayes.cli import main

raise SystemExit(main())
