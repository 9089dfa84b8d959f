from imgproxy_py.cli import main

raise SystemExit(main())
