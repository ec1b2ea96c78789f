from mailgw.ops.cli import main

raise SystemExit(main())
