from realtime_style.cli import main

raise SystemExit(main())
