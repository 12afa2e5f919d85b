from rag_cli.main import main

main()
