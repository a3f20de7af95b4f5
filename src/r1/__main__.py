from r1.cli import main

raise SystemExit(main())
