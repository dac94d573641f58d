from nzc.cli import main

raise SystemExit(main())
