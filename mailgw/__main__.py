from mailgw.cli import main

raise SystemExit(main())
