from keras_convx.cli import main

raise SystemExit(main())
