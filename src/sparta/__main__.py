from sparta.cli import main

raise SystemExit(main())
