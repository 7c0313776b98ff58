from reservoir_rl.cli import main

main()
