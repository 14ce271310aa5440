from pds_dpo_workers.cli import main

raise SystemExit(main())
