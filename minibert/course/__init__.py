"""The course tools around the framework: what a learner or a teacher runs, not what BERT is.

    demo.py           the main job: fine-tune MiniLM on the support tickets, show the results
    autograd_demo.py  a tiny computation graph and its gradients, step by step
    explain.py        one text followed through every step (terminal, or an HTML page)
    viz.py            the plots the lessons and notebooks draw
    quiz.py           the self-check questions of every lesson (quizzes/*.json)
    exercises.py      a learner's copy with the key pieces cut out, and its soundness check
    progress.py       which exercises pass, and a teacher's report over many copies

They sit above the framework (minibert/*.py) and import from it, never the other way round:
minibert/ itself is what a learner reads.
"""
